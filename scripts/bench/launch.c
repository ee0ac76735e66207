/*
 * launch.c - start/stop timer for scripts/bench.sh (Linux only).
 *
 *   launch LOG PATTERN SETTLE_MS -- COMMAND [ARGS...]
 *
 * Starts COMMAND with its stdout and stderr on a pipe (copied to LOG), and
 * measures with CLOCK_MONOTONIC (nanoseconds):
 *   ready_ms  from just before fork() until a line containing PATTERN
 *   rss_kb    VmRSS of the process SETTLE_MS after that line
 *   stop_ms   from kill(SIGTERM) until waitpid() returns
 * and prints one line: "ready_ms=R rss_kb=K stop_ms=S status=X".
 * Exits 1 if the pattern never shows up (30 s) or the process does not exit
 * within 20 s of SIGTERM (it is then killed). The child gets SIGKILL if this
 * helper dies (PR_SET_PDEATHSIG), so nothing is left behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int fd_out = -1;
static FILE *logf;
static char line[65536];
static size_t used;

/* Reads what is available (waiting at most timeout_ms); returns 1 if PATTERN was seen in a
 * complete line, 0 if not, -1 on EOF. */
static int pump(const char *pattern, int timeout_ms)
{
    struct pollfd p = {.fd = fd_out, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0) return 0;
    char buf[8192];
    ssize_t n = read(fd_out, buf, sizeof buf);
    if (n <= 0) return n == 0 || errno != EINTR ? -1 : 0;
    fwrite(buf, 1, (size_t)n, logf);
    int seen = 0;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || used == sizeof line - 1) {
            line[used] = 0;
            if (pattern && strstr(line, pattern)) seen = 1;
            used = 0;
        } else {
            line[used++] = buf[i];
        }
    }
    return seen;
}

static long rss_kb(pid_t pid)
{
    char path[64], row[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f) return -1;
    while (fgets(row, sizeof row, f))
        if (sscanf(row, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    if (argc < 6 || strcmp(argv[4], "--") != 0) {
        fprintf(stderr, "usage: %s LOG PATTERN SETTLE_MS -- COMMAND [ARGS...]\n", argv[0]);
        return 64;
    }
    logf = fopen(argv[1], "w");
    if (!logf) { perror(argv[1]); return 1; }
    const char *pattern = argv[2];
    int settle_ms = atoi(argv[3]);

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) { perror("pipe"); return 1; }
    pid_t parent = getpid();
    long long t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        execv(argv[5], argv + 5);
        perror(argv[5]);
        _exit(127);
    }
    close(fds[1]);
    fd_out = fds[0];

    long long t_ready = 0;
    while (!t_ready) {
        int r = pump(pattern, 100);
        if (r == 1) t_ready = now_ns();
        else if (r < 0 || now_ns() - t0 > 30000000000LL) {
            fprintf(stderr, "launch: '%s' never appeared (see %s)\n", pattern, argv[1]);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return 1;
        }
    }
    long long settle_until = t_ready + settle_ms * 1000000LL;
    while (now_ns() < settle_until) {
        int left = (int)((settle_until - now_ns()) / 1000000) + 1;
        if (pump(NULL, left) < 0) break;
    }
    long rss = rss_kb(pid);

    long long t_kill = now_ns();
    kill(pid, SIGTERM);
    while (pump(NULL, 100) >= 0) {
        if (now_ns() - t_kill > 20000000000LL) {
            fprintf(stderr, "launch: no exit 20 s after SIGTERM; killing\n");
            kill(pid, SIGKILL);
            break;
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    long long t_exit = now_ns();
    fclose(logf);

    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("ready_ms=%.3f rss_kb=%ld stop_ms=%.3f status=%d\n", (t_ready - t0) / 1e6, rss,
           (t_exit - t_kill) / 1e6, code);
    return 0;
}
