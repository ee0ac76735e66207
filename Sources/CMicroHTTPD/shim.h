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

#endif
