#ifndef LOOP_BENCH_SHIM_H
#define LOOP_BENCH_SHIM_H

/* Non-variadic wrappers for the prototype (Swift cannot call C variadic functions), plus the
 * epoll/eventfd calls, whose x86-64 `struct epoll_event` is packed and awkward from Swift. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <microhttpd.h>

/* A listening socket on 127.0.0.1:port like the library's ListeningSocket (SO_REUSEADDR,
 * non-blocking, backlog 1024); with reuseport != 0 also SO_REUSEPORT. -1 on failure. */
static inline int
loop_listen(int port, int reuseport)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 1024) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One daemon in external epoll mode (no internal thread) on an already listening socket, with
 * the library's limits (see Benchmarks/reference/reference.c). */
static inline struct MHD_Daemon *
loop_start_daemon(int listen_fd, MHD_AccessHandlerCallback handler, void *handler_cls,
                  MHD_RequestCompletedCallback completed, void *completed_cls)
{
    unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    struct MHD_OptionItem options[] = {
        {MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, completed_cls},
        {MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, 1024, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, 256, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 32768, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, handler_cls,
                            MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

/* The daemon's own epoll descriptor (readable when MHD_run has work), or -1. */
static inline int
loop_daemon_epoll_fd(struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_EPOLL_FD);
    return info == NULL ? -1 : info->epoll_fd;
}

/* How long epoll_wait may sleep for the daemon's sake: milliseconds, or -1 for no limit. */
static inline int
loop_daemon_timeout(struct MHD_Daemon *daemon)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(daemon, &ms) != MHD_YES) return -1;
    return ms > 60000 ? 60000 : (int)ms;
}

/* A constant response, created once and shared (MHD reference-counts it under a mutex). */
static inline struct MHD_Response *
loop_constant_response(const char *text, const char *type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (r != NULL) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    return r;
}

static inline int loop_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

/* Level-triggered EPOLLIN for fd; the event carries `tag`. */
static inline int
loop_epoll_add(int epfd, int fd, uint32_t tag)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u32 = tag;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Waits for events; each ready descriptor's tag goes into `tags`. Returns the count, 0 on
 * timeout or EINTR. */
static inline int
loop_epoll_wait(int epfd, uint32_t *tags, int max, int timeout_ms)
{
    struct epoll_event events[16];
    if (max > 16) max = 16;
    int n = epoll_wait(epfd, events, max, timeout_ms);
    if (n < 0) return 0;
    for (int i = 0; i < n; i++) tags[i] = events[i].data.u32;
    return n;
}

static inline int loop_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

static inline void
loop_eventfd_signal(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n;
}

static inline void
loop_eventfd_clear(int fd)
{
    uint64_t value;
    ssize_t n = read(fd, &value, sizeof value);
    (void)n;
}

#endif
