/*
 * reference.c - the plain-C baseline for scripts/bench.sh.
 *
 * A minimal libmicrohttpd server with exactly the engine settings MHDServers
 * uses for every daemon (see Sources/MHDServers/Bridge/Engine.swift and
 * ListeningSocket.swift), so that the benchmark measures the cost of the
 * Swift layer and nothing else:
 *
 *   flags   MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME
 *           | MHD_USE_ERROR_LOG | MHD_USE_TURBO
 *   options THREAD_POOL_SIZE = online cores (only when > 1),
 *           CONNECTION_TIMEOUT 30, CONNECTION_LIMIT 1024,
 *           PER_IP_CONNECTION_LIMIT 256, CONNECTION_MEMORY_LIMIT 32768
 *   socket  bound to 127.0.0.1:PORT by us, SO_REUSEADDR only (never
 *           SO_REUSEPORT), non-blocking, backlog 1024, handed over with
 *           MHD_OPTION_LISTEN_SOCKET
 *
 * Routes:
 *   GET  /api/hello    constant JSON response, created once and reused
 *   GET  /bench/async  same as /api/hello. The C side has no async
 *                      equivalent (no suspend/resume, no second thread), so
 *                      the "async" row of the benchmark compares the Swift
 *                      async bridge against plain synchronous C.
 *   POST /bench/echo   accumulates the body and sends it back as
 *                      application/json (no JSON parsing on this side)
 *   GET  /bench/stream the engine's own content-reader response:
 *                      MHD_SIZE_UNKNOWN (so chunked), 64 KiB block size, the
 *                      callback copies 'a' bytes from a static 64 KiB block
 *                      until ?bytes=N (default 1 MiB; not a number: the
 *                      default; negative: 400) have been given, like the
 *                      app's 64 KiB pieces
 *   GET  /bench/file   a 1 MiB file of 'a' bytes, made at start in a fresh
 *                      temporary directory (mkdtemp) and removed at exit,
 *                      sent with MHD_create_response_from_fd_at_offset64
 *                      (sendfile on plain HTTP). Like the app's
 *                      Response.file(at:for:): the file is opened and
 *                      fstat'ed per request, the engine gets a dup of that
 *                      descriptor (closed by the engine after the response)
 *                      and the original is closed at once; Content-Type,
 *                      Last-Modified, ETag and Accept-Ranges are sent. No
 *                      ranges or conditional GET (the benchmark sends
 *                      neither).
 *   POST /bench/upload counts the body as it arrives (nothing is kept) and
 *                      answers {"bytes":N} as application/json
 *
 * Like the Swift engine, every response is queued on the final
 * access-handler call, never on the first (headers-only) one.
 *
 * Usage: reference PORT     SIGTERM / SIGINT stop the daemon and exit 0.
 * Build: cc -O2 -o reference reference.c $(pkg-config --cflags --libs libmicrohttpd)
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HELLO "{\"message\":\"Hello from the public server!\"}"
#define MAX_BODY (1024 * 1024)
#define BLOCK (64 * 1024)                /* the app's Engine.streamBlockSize and piece size */
#define STREAM_DEFAULT (1024 * 1024)
#define FILE_SIZE (1024 * 1024)

static struct MHD_Response *hello;       /* reused for every /api/hello */
static struct MHD_Response *not_found;   /* reused for unknown routes */
static struct MHD_Response *too_large;   /* reused for oversized bodies */
static struct MHD_Response *bad_request; /* reused for a negative ?bytes= */
static struct MHD_Response *unavailable; /* reused when the file cannot be opened */

static char block[BLOCK];                /* 'a' bytes, the stream's source */
static char file_dir[] = "/tmp/mhd-reference-XXXXXX";
static char file_path[sizeof file_dir + 16];

/* Per-request state, kept in the access handler's con_cls slot. */
struct request {
    int seen_headers;
    char *body;
    size_t size, capacity;
    int overflow;
    int counting;                        /* POST /bench/upload: count, keep nothing */
    uint64_t counted;
};

static struct MHD_Response *constant(const char *text, const char *type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (r == NULL || MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES) {
        fprintf(stderr, "reference: cannot create a response\n");
        exit(1);
    }
    return r;
}

/* GET /bench/stream: the bytes still to give, freed by the engine through stream_free. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    uint64_t *left = cls;
    if (*left == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = max < BLOCK ? max : BLOCK;
    if (n > *left) n = (size_t)*left;
    memcpy(buf, block, n);
    *left -= n;
    return (ssize_t)n;
}

static void stream_free(void *cls) { free(cls); }

static enum MHD_Result answer_stream(struct MHD_Connection *connection)
{
    uint64_t total = STREAM_DEFAULT;
    const char *arg = MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "bytes");
    if (arg != NULL && *arg != '\0') {     /* like the app: not a number -> the default */
        char *end;
        errno = 0;
        long long value = strtoll(arg, &end, 10);
        if (*end == '\0' && errno == 0) {
            if (value < 0) return MHD_queue_response(connection, MHD_HTTP_BAD_REQUEST, bad_request);
            total = (uint64_t)value;
        }
    }
    uint64_t *left = malloc(sizeof *left);
    if (left == NULL) return MHD_NO;
    *left = total;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, BLOCK, stream_read, left, stream_free);
    if (r == NULL) {
        free(left);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    enum MHD_Result result = MHD_queue_response(connection, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return result;
}

/* GET /bench/file: open + fstat per request, the engine gets a dup (see the top). */
static enum MHD_Result answer_file(struct MHD_Connection *connection)
{
    int fd = open(file_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return MHD_queue_response(connection, MHD_HTTP_SERVICE_UNAVAILABLE, unavailable);
    struct stat info;
    int copy = -1;
    if (fstat(fd, &info) != 0 || (copy = dup(fd)) < 0) {
        close(fd);
        return MHD_queue_response(connection, MHD_HTTP_SERVICE_UNAVAILABLE, unavailable);
    }
    close(fd);
    struct MHD_Response *r = MHD_create_response_from_fd_at_offset64((uint64_t)info.st_size, copy, 0);
    if (r == NULL) {
        close(copy);
        return MHD_queue_response(connection, MHD_HTTP_SERVICE_UNAVAILABLE, unavailable);
    }
    char modified[64], etag[64];
    struct tm tm;
    gmtime_r(&info.st_mtim.tv_sec, &tm);
    strftime(modified, sizeof modified, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(etag, sizeof etag, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"", (uint64_t)info.st_ino,
             (uint64_t)info.st_size,
             (uint64_t)info.st_mtim.tv_sec * 1000000000u + (uint64_t)info.st_mtim.tv_nsec);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, modified);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    enum MHD_Result result = MHD_queue_response(connection, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return result;
}

static enum MHD_Result answer_upload(struct MHD_Connection *connection, uint64_t bytes)
{
    char text[64];
    int n = snprintf(text, sizeof text, "{\"bytes\":%" PRIu64 "}", bytes);
    struct MHD_Response *r =
        MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result result = MHD_queue_response(connection, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return result;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *connection,
                                      const char *url, const char *method,
                                      const char *version, const char *upload_data,
                                      size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct request *req = *con_cls;

    if (req == NULL) {                      /* first call: headers only */
        req = calloc(1, sizeof *req);
        if (req == NULL) return MHD_NO;
        req->counting = strcmp(method, MHD_HTTP_METHOD_POST) == 0 && strcmp(url, "/bench/upload") == 0;
        *con_cls = req;
        return MHD_YES;
    }

    if (*upload_size > 0) {                 /* body chunk */
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->counting) {
            req->counted += n;
            return MHD_YES;
        }
        if (req->overflow) return MHD_YES;
        if (req->size + n > MAX_BODY) {
            req->overflow = 1;
            return MHD_YES;
        }
        if (req->size + n > req->capacity) {
            size_t capacity = req->capacity ? req->capacity : 2048;
            while (capacity < req->size + n) capacity *= 2;
            char *grown = realloc(req->body, capacity);
            if (grown == NULL) return MHD_NO;
            req->body = grown;
            req->capacity = capacity;
        }
        memcpy(req->body + req->size, upload_data, n);
        req->size += n;
        return MHD_YES;
    }

    /* Final call: answer. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 &&
        (strcmp(url, "/api/hello") == 0 || strcmp(url, "/bench/async") == 0))
        return MHD_queue_response(connection, MHD_HTTP_OK, hello);

    if (strcmp(method, MHD_HTTP_METHOD_POST) == 0 && strcmp(url, "/bench/echo") == 0) {
        if (req->overflow)
            return MHD_queue_response(connection, MHD_HTTP_CONTENT_TOO_LARGE, too_large);
        struct MHD_Response *echo =
            MHD_create_response_from_buffer(req->size, req->body, MHD_RESPMEM_MUST_COPY);
        if (echo == NULL) return MHD_NO;
        MHD_add_response_header(echo, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        enum MHD_Result result = MHD_queue_response(connection, MHD_HTTP_OK, echo);
        MHD_destroy_response(echo);         /* the connection holds its own reference */
        return result;
    }

    if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 && strcmp(url, "/bench/stream") == 0)
        return answer_stream(connection);
    if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 && strcmp(url, "/bench/file") == 0)
        return answer_file(connection);
    if (req->counting) return answer_upload(connection, req->counted);

    return MHD_queue_response(connection, MHD_HTTP_NOT_FOUND, not_found);
}

/* The 1 MiB file of 'a' bytes in a fresh temporary directory; 0 on success. */
static int make_file(void)
{
    if (mkdtemp(file_dir) == NULL) return -1;
    snprintf(file_path, sizeof file_path, "%s/file.bin", file_dir);
    int fd = open(file_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    for (size_t done = 0; done < FILE_SIZE; done += BLOCK) {
        if (write(fd, block, BLOCK) != BLOCK) {
            close(fd);
            return -1;
        }
    }
    return close(fd);
}

static void remove_file(void)
{
    unlink(file_path);
    rmdir(file_dir);
}

static void completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                      enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)connection;
    (void)code;
    struct request *req = *con_cls;
    if (req == NULL) return;
    free(req->body);
    free(req);
    *con_cls = NULL;
}

/* Same listening socket as ListeningSocket.swift: 127.0.0.1, SO_REUSEADDR, backlog 1024. */
static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 1024) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 64;
    }
    int port = atoi(argv[1]);
    int fd = listen_on(port);
    if (fd < 0) {
        fprintf(stderr, "reference: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }

    hello = constant(HELLO, "application/json");
    not_found = constant("{\"error\":\"not found\"}", "application/json");
    too_large = constant("{\"error\":\"content too large\"}", "application/json");
    bad_request = constant("{\"error\":\"bytes must not be negative\"}", "application/json");
    unavailable = constant("{\"error\":\"the response body cannot be sent now\"}", "application/json");
    memset(block, 'a', sizeof block);
    if (make_file() != 0) {
        fprintf(stderr, "reference: cannot make the 1 MiB file in %s: %s\n", file_dir, strerror(errno));
        if (file_path[0] != '\0') unlink(file_path);
        rmdir(file_dir);
        close(fd);
        return 1;
    }

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned int threads = cores > 1 ? (unsigned int)cores : 1;
    unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                         MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    struct MHD_OptionItem options[] = {
        {MHD_OPTION_LISTEN_SOCKET, fd, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, 1024, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, 256, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 32768, NULL},
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };

    /* Block the stop signals before the daemon's threads exist (they inherit the mask),
     * then wait for one synchronously: no handler, no race. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    struct MHD_Daemon *daemon = MHD_start_daemon(flags, 0, NULL, NULL, access_handler, NULL,
                                                 MHD_OPTION_ARRAY, options, MHD_OPTION_END);
    if (daemon == NULL) {
        fprintf(stderr, "reference: MHD_start_daemon failed\n");
        close(fd);
        remove_file();
        return 1;
    }
    printf("reference listening on http://127.0.0.1:%d (%u threads)\n", port, threads);
    fflush(stdout);

    int sig;
    sigwait(&stop, &sig);

    MHD_stop_daemon(daemon);               /* the daemon closes the listening socket */
    MHD_destroy_response(hello);
    MHD_destroy_response(not_found);
    MHD_destroy_response(too_large);
    MHD_destroy_response(bad_request);
    MHD_destroy_response(unavailable);
    remove_file();
    return 0;
}
