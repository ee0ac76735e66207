import Logging

/// What the owner of one server implements: its routes, and hooks around binding, start and
/// shutdown. Every hook has a default that logs, so a lifecycle can be as small as its routes.
///
/// Hooks run in this order for each server: ``onPortCheck(_:context:)`` then either
/// ``onPortUnavailable(_:reason:context:)`` (and the next port is checked) or
/// ``onPortAvailable(_:context:)``; once *every* server of the manager is bound and serving,
/// ``onStarted(_:context:)`` (again after each restart, for the new server); after its daemon
/// has stopped, ``onShutdown(context:)`` (servers stop in reverse start order). On SIGHUP or
/// ``ServerManager/reload()``, ``onReload(context:)``.
///
/// ```swift
/// struct PublicAPI: ServerLifecycle {
///     func registerRoutes(on router: inout Router, context: HTTPServerContext) {
///         router.get("/api/hello") { _ in .text("hello") }
///     }
///     func onStarted(_ address: BoundAddress, context: HTTPServerContext) async {
///         context.logger.info("\(context.name) ready at \(address.url)")
///     }
/// }
/// ```
public protocol ServerLifecycle: Sendable {
    /// Declares the server's routes. Called once, before the server binds.
    func registerRoutes(on router: inout Router, context: HTTPServerContext)

    /// A port is about to be tried.
    func onPortCheck(_ port: Int, context: HTTPServerContext)

    /// A port could not be used (busy, or taken by another server of the same manager); the
    /// next candidate will be tried.
    func onPortUnavailable(_ port: Int, reason: String, context: HTTPServerContext)

    /// The server is bound to `port` (the real port, also for a configured port 0).
    func onPortAvailable(_ port: Int, context: HTTPServerContext)

    /// The server is listening and serving; called after every server of the manager bound.
    func onStarted(_ address: BoundAddress, context: HTTPServerContext) async

    /// The server stopped: it accepts nothing more, and its daemon and port are released.
    /// Runs once per server, when it stops for good (the manager's shutdown,
    /// ``ServerManager/stopServer(named:)``, or a replacement by another lifecycle); not
    /// after ``ServerManager/restartServer(named:)``.
    func onShutdown(context: HTTPServerContext) async

    /// The manager was asked to reload (SIGHUP, or ``ServerManager/reload()``): read your own
    /// configuration again. Runs after the manager has read the server's certificate files
    /// again. An error is logged with the server's name; the other servers still reload. To
    /// have routes registered anew, call ``ServerManager/restartServer(named:)`` from here.
    ///
    /// ```swift
    /// func onReload(context: HTTPServerContext) async throws {
    ///     try await featureFlags.load(from: "/etc/app/flags.json")
    /// }
    /// ```
    func onReload(context: HTTPServerContext) async throws
}

extension ServerLifecycle {
    /// Logs at debug level.
    public func onPortCheck(_ port: Int, context: HTTPServerContext) {
        context.logger.debug("\(context.name): checking port \(port)", metadata: ["server": "\(context.name)"])
    }

    /// Logs at notice level.
    public func onPortUnavailable(_ port: Int, reason: String, context: HTTPServerContext) {
        context.logger.notice(
            "\(context.name): port \(port) unavailable (\(reason)), trying the next",
            metadata: ["server": "\(context.name)"])
    }

    /// Logs at debug level.
    public func onPortAvailable(_ port: Int, context: HTTPServerContext) {
        context.logger.debug("\(context.name): port \(port) available", metadata: ["server": "\(context.name)"])
    }

    /// Logs `NAME listening on URL` at info level.
    public func onStarted(_ address: BoundAddress, context: HTTPServerContext) async {
        context.logger.info(
            "\(context.name) listening on \(address.url)",
            metadata: ["server": "\(context.name)", "port": "\(address.port)"])
    }

    /// Logs `NAME stopped` at info level.
    public func onShutdown(context: HTTPServerContext) async {
        context.logger.info("\(context.name) stopped", metadata: ["server": "\(context.name)"])
    }

    /// Does nothing.
    public func onReload(context: HTTPServerContext) async throws {}
}
