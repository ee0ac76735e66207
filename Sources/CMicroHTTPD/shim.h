#ifndef MHDSERVERS_CMICROHTTPD_SHIM_H
#define MHDSERVERS_CMICROHTTPD_SHIM_H

// Non-variadic wrappers around the parts of libmicrohttpd that Swift cannot
// call directly (C variadic functions), plus a few small helpers that keep
// the Swift bridge free of fragile pointer arithmetic.

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <microhttpd.h>

/// The number of CPUs in this process's affinity mask (what `taskset` and
/// cpusets allow), or -1. Through the system call, because the glibc wrapper
/// and `CPU_COUNT` need `_GNU_SOURCE`.
static inline int
mhds_affinity_cpu_count(void)
{
    unsigned long mask[64]; /* up to 4096 CPUs */
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    if (bytes <= 0) {
        return -1;
    }
    int count = 0;
    for (long i = 0; i < bytes / (long)sizeof(unsigned long); i++) {
        count += __builtin_popcountl(mask[i]);
    }
    return count;
}

/// Starts a daemon on an already listening socket; every option is passed
/// through `MHD_OPTION_ARRAY` (the array must end with `MHD_OPTION_END`).
static inline struct MHD_Daemon *
mhds_start_daemon(unsigned int flags,
                  MHD_AccessHandlerCallback handler,
                  void *handler_cls,
                  const struct MHD_OptionItem *options)
{
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, handler_cls,
                            MHD_OPTION_ARRAY, options,
                            MHD_OPTION_END);
}

/// The connection's socket, or -1.
static inline int
mhds_connection_fd(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info == NULL ? -1 : info->connect_fd;
}

/// The peer address of the connection, or NULL.
static inline const struct sockaddr *
mhds_connection_client_address(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return info == NULL ? NULL : info->client_addr;
}

/// The per-connection pointer set by the connection-notify callback, or NULL.
static inline void *
mhds_connection_socket_context(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info == NULL ? NULL : info->socket_context;
}

/* The status of the response queued on a connection (0 if none): how the layer learns what
 * the engine answered by itself. */
static inline unsigned int
mhds_connection_http_status(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_HTTP_STATUS);
    return info == NULL ? 0 : info->http_status;
}

/* Relaxed atomic counters in plain memory (used for latency histograms: one allocation for
 * all the buckets instead of one object per bucket). */
static inline void
mhds_counter_add (long *counter, long value)
{
  __atomic_fetch_add (counter, value, __ATOMIC_RELAXED);
}

static inline long
mhds_counter_load (const long *counter)
{
  return __atomic_load_n (counter, __ATOMIC_RELAXED);
}

/* Answers without chunked framing and closes the connection after the response, keeping
 * "HTTP/1.1" on the status line (MHD_set_response_options is variadic). */
static inline int
mhds_response_without_chunks (struct MHD_Response *response)
{
  return MHD_set_response_options (response, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END);
}


/// Starts `path` as a new process the way systemd starts a socket-activated service: its
/// descriptors 3, 4, ... are `fds[0 .. count)` (the same open sockets), every signal has its
/// default disposition and none is blocked, and the text at `pid_digits` (inside one of the
/// `envp` strings: the value of `LISTEN_PID=`, with room for 11 characters) receives the new
/// process's id. That needs the id, which only the child knows before `execve`, so the child
/// is made with `fork` and does nothing but async-signal-safe calls before `execve`.
/// Every other descriptor is closed on exec.
///
/// Returns the child's pid once `execve` succeeded, or -1 with `errno` set (also when
/// `execve` failed in the child: its `errno` comes back through a close-on-exec pipe).
static inline pid_t
mhds_spawn_with_descriptors(const char *path, char *const argv[], char *const envp[],
                            const int *fds, int count, char *pid_digits)
{
    int report[2];
    if (pipe(report) != 0) {
        return -1;
    }
    (void)fcntl(report[0], F_SETFD, FD_CLOEXEC);
    (void)fcntl(report[1], F_SETFD, FD_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(report[0]);
        close(report[1]);
        errno = saved;
        return -1;
    }
    if (pid == 0) {
        /* The child: async-signal-safe calls only. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        for (int sig = 1; sig < NSIG; sig++) {
            if (sig != SIGKILL && sig != SIGSTOP) {
                (void)sigaction(sig, &dfl, NULL);
            }
        }
        sigset_t none;
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        /* Out of the way of 3 .. 3+count first, so no source is overwritten before it is copied. */
        int base = 3 + count;
        int moved[count > 0 ? count : 1];
        int writer = fcntl(report[1], F_DUPFD_CLOEXEC, base);
        int failed = writer < 0;
        for (int i = 0; i < count && !failed; i++) {
            moved[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, base);
            failed = moved[i] < 0;
        }
        for (int i = 0; i < count && !failed; i++) {
            /* dup2 leaves the copy open across exec. */
            failed = dup2(moved[i], 3 + i) < 0;
        }
        if (!failed) {
            pid_t self = getpid();
            char digits[12];
            int length = 0;
            do {
                digits[length++] = (char)('0' + self % 10);
                self /= 10;
            } while (self > 0 && length < 11);
            for (int i = 0; i < length; i++) {
                pid_digits[i] = digits[length - 1 - i];
            }
            pid_digits[length] = 0;
#ifdef SYS_close_range
            /* Whatever else is open (a library's descriptor without FD_CLOEXEC) closes on exec. */
            (void)syscall(SYS_close_range, (unsigned int)base, ~0U, 4u /* CLOSE_RANGE_CLOEXEC */);
#endif
            execve(path, argv, envp);
        }
        int code = errno;
        if (writer >= 0) {
            (void)write(writer, &code, sizeof code);
        }
        _exit(127);
    }
    close(report[1]);
    int code = 0;
    ssize_t got;
    do {
        got = read(report[0], &code, sizeof code);
    } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof code) {
        int status;
        (void)waitpid(pid, &status, 0);
        errno = code;
        return -1;
    }
    return pid;
}

#endif
