/// Stopping, restarting and replacing one server while the others serve.
extension ServerManager {
    /// Drains one server and removes it; the others keep serving.
    ///
    /// Its readiness probe turns 503 and it stops accepting at once (new connections to its
    /// port are refused), in-flight requests get up to ``shutdownTimeout``, then its daemon
    /// stops, its lifecycle's ``ServerLifecycle/onShutdown(context:)`` runs, its port is released
    /// and it leaves ``servers``. Returns when all that is done.
    ///
    /// - Throws: ``ServerError`` with code ``ServerError/Code/unknownServer`` if no server has
    ///   that name, or ``ServerError/Code/invalidConfiguration`` if the manager is not running.
    ///
    /// ```swift
    /// try await manager.stopServer(named: "admin")
    /// ```
    public func stopServer(named name: String) async throws {
        try await changes.run {
            let entry = try runningServer(named: name)
            let port = entry.server.address?.port
            logger.info("\(name): stopping", metadata: ["server": "\(name)"])
            entry.server.withdrawReadiness()
            entry.server.stopAccepting(deadline: .now + shutdownTimeout)
            await entry.server.finishShutdown()
            let slot = state.withLock { locals -> ServerSlot? in
                locals.servers.removeAll { $0.server === entry.server }
                return locals.slots.removeValue(forKey: name)
            }
            if let port { releasePortClaim(port) }
            slot?.serverStoppedAlone()
        }
    }

    /// Restarts one server without refusing a connection or failing a request: its routes are
    /// registered anew (``ServerLifecycle/registerRoutes(on:context:)`` runs again, so routes
    /// that read configuration read it again) and a new daemon starts on a duplicate of the same
    /// listening socket before the old one stops accepting.
    ///
    /// The hand-over, in order: the new server starts on the same address and serves at once
    /// (both accept for a moment); the old daemon stops accepting without closing the socket;
    /// the new lifecycle's ``ServerLifecycle/onStarted(_:context:)`` runs; the old server's
    /// in-flight requests finish (their responses close their connections, so clients reconnect
    /// to the new one),
    /// and connections that stay open idle for ``handOverIdleTime`` are closed; then the old
    /// daemon stops, all within ``shutdownTimeout``. A restart is not a stop:
    /// ``ServerLifecycle/onShutdown(context:)`` does not run. Counters in ``servers`` start from
    /// zero. Returns when the old server has stopped. Runtime changes run one at a time.
    ///
    /// If the new server cannot start, the old one goes on serving and the error is thrown.
    ///
    /// ```swift
    /// let address = try await manager.restartServer(named: "public")
    /// ```
    @discardableResult
    public func restartServer(named name: String) async throws -> BoundAddress {
        try await changes.run {
            let entry = try runningServer(named: name)
            do {
                return try await handOver(from: entry, to: entry.definition, replacing: false)
            } catch {
                logger.error("\(name): restart failed; the running server goes on serving: \(error)", metadata: ["server": "\(name)"])
                throw error
            }
        }
    }

    /// Replaces the server of the same name by `server` (new routes, a new lifecycle or a new
    /// configuration), with the hand-over of ``restartServer(named:)`` when it listens on the
    /// same host and its candidate ports include the one bound now (or port 0). Otherwise the
    /// new server binds its own port first (with the usual fallback), then the old one stops
    /// accepting, drains and releases its port. The old lifecycle's
    /// ``ServerLifecycle/onShutdown(context:)`` runs once its server has stopped.
    ///
    /// ```swift
    /// var config = manager.servers.first { $0.name == "public" }!.config
    /// config.limits.maxBodySize = 8 << 20
    /// try await manager.replaceServer(Server(config: config, lifecycle: PublicAPIv2()))
    /// ```
    @discardableResult
    public func replaceServer(_ server: Server) async throws -> BoundAddress {
        try await changes.run {
            let name = server.config.name
            let entry = try runningServer(named: name)
            do {
                return try await handOver(from: entry, to: server, replacing: true)
            } catch {
                logger.error("\(name): replacement failed; the running server goes on serving: \(error)", metadata: ["server": "\(name)"])
                throw error
            }
        }
    }

    /// The current server of that name, if the manager is running.
    func runningServer(named name: String) throws -> Managed {
        let (entry, running) = state.withLock { locals in
            (locals.servers.first { $0.server.config.name == name }, locals.machine.acceptsRuntimeChanges)
        }
        guard running else {
            throw ServerError(
                .invalidConfiguration, server: name, host: entry?.server.config.host ?? "", portsTried: [],
                message: "the manager is not running (not started yet, or shutting down)")
        }
        guard let entry, entry.server.state == .running else {
            throw ServerError(
                .unknownServer, server: name, host: "", portsTried: [],
                message: "no running server has this name (servers: \(servers.map(\.name).joined(separator: ", ")))")
        }
        return entry
    }

    /// Starts `definition` as the successor of `old` and retires `old`. See
    /// ``restartServer(named:)``.
    func handOver(from old: Managed, to definition: Server, replacing: Bool) async throws -> BoundAddress {
        let name = old.server.config.name
        guard let oldAddress = old.server.address else {
            throw ServerError(.unknownServer, server: name, host: "", portsTried: [], message: "the server is not listening")
        }
        let config = definition.config
        let sameAddress = config.host == old.server.config.host
            && (config.candidatePorts.contains(oldAddress.port) || config.candidatePorts.contains(0))
        let entry = makeManaged(definition, generation: old.generation + 1)
        let address: BoundAddress
        do {
            if sameAddress, let socket = try old.server.duplicateSocket() {
                address = try entry.server.adopt(socket)
            } else {
                try bindAll([entry])
                address = entry.server.address!
            }
            try entry.server.start()
        } catch {
            if !sameAddress, let port = entry.server.address?.port { releasePortClaim(port) }
            entry.server.forceStop()
            await entry.server.finishShutdown(reportsStopped: false)
            entry.server.fail(error)
            throw error
        }
        // Swap, unless a shutdown began meanwhile (then the drain has the old one already). The
        // old server stops accepting in the same step: a drain that begins right after must find
        // it quiesced before it shuts the shared socket down through the new one (an engine
        // still polling a socket shut down under it aborts when it is quiesced later).
        let swapped = state.withLock { locals -> Bool in
            guard locals.machine.acceptsRuntimeChanges,
                let index = locals.servers.firstIndex(where: { $0.server === old.server })
            else { return false }
            locals.servers[index] = entry
            locals.retiring.append(old)
            old.server.stopAccepting(deadline: .now + shutdownTimeout, handOverIdleTime: sameAddress ? handOverIdleTime : nil)
            return true
        }
        guard swapped else {
            entry.server.forceStop()
            await entry.server.finishShutdown(reportsStopped: false)
            if !sameAddress { releasePortClaim(address.port) }
            throw ServerError(
                .invalidConfiguration, server: name, host: config.host, portsTried: [],
                message: "the manager began shutting down during the restart")
        }
        logger.info(
            "\(name): generation \(entry.generation) serving on \(address.url); the previous one stopped accepting and drains",
            metadata: ["server": "\(name)"])
        await entry.lifecycle.onStarted(address, context: entry.context)
        await old.server.finishShutdown(reportsStopped: replacing)
        state.withLock { $0.retiring.removeAll { $0.server === old.server } }
        if !sameAddress { releasePortClaim(oldAddress.port) }
        return address
    }
}
