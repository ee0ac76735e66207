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
#include <microhttpd.h>

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

/// The port the daemon's listening socket is bound to, or 0 if unknown.
static inline uint16_t
mhds_daemon_bind_port(struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}

/// Number of connections the daemon currently holds open.
static inline unsigned int
mhds_daemon_current_connections(struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info == NULL ? 0 : info->num_connections;
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

/// Overrides the idle timeout of one connection (seconds, 0 = daemon default).
static inline enum MHD_Result
mhds_set_connection_timeout(struct MHD_Connection *connection, unsigned int seconds)
{
    return MHD_set_connection_option(connection, MHD_CONNECTION_OPTION_TIMEOUT, seconds);
}

#endif
