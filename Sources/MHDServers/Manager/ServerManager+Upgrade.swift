#if canImport(Glibc)
import Glibc
#endif

/// Binary upgrade: a new process of the executable takes the listening sockets over.
extension ServerManager {
    /// Starts a new process of this program (a new build installed at the same path, say) with
    /// every listening socket passed the way systemd passes them (`LISTEN_FDS`,
    /// `LISTEN_FDNAMES`, `LISTEN_PID`, descriptors from 3, named after the servers and the side
    /// services' listeners), waits until it reports that all its servers serve, then drains this
    /// process and returns from ``runAll(_:alongside:signals:reloadSignals:upgradeSignals:)``,
    /// as SIGUSR2 does. No connection is refused and no request fails: both processes accept
    /// on the same sockets until this one stops accepting (without closing them); requests in
    /// flight here finish, their connections close, and clients reconnect to the new process.
    ///
    /// The new process needs nothing special: a ``ServerManager`` takes sockets passed this way
    /// by server name (the same code as systemd socket activation) and reports readiness back
    /// when its servers serve. Under systemd (`Type=notify`) the new process becomes the
    /// service's main process (`MAINPID=`); systemd is not told the service stops.
    ///
    /// If the new process cannot be started, exits, or is not ready within `readyTimeout`
    /// (it is then sent SIGTERM), this process goes on serving and the error says why. Run a
    /// binary upgrade under a supervisor that follows the main process (systemd, or a shell);
    /// not as a container's first process, whose exit ends the container.
    ///
    /// - Parameters:
    ///   - executable: the program to start; default: this one's path (a file replaced at that
    ///     path starts the new file).
    ///   - arguments: its arguments, name first; default: this process's.
    ///   - readyTimeout: how long the new process may take to report ready.
    /// - Returns: the new process's id.
    /// - Throws: ``ServerError`` with code ``ServerError/Code/upgradeFailed``.
    ///
    /// ```swift
    /// router.post("/admin/upgrade") { _ in
    ///     let pid = try await manager.upgrade()
    ///     return .text("process \(pid) took over")
    /// }
    /// ```
    @discardableResult
    public func upgrade(
        executable: String? = nil, arguments: [String]? = nil, readyTimeout: Duration = .seconds(60)
    ) async throws -> Int32 {
        try await changes.run {
            try await performUpgrade(
                executable: executable ?? ProcessUpgrade.currentExecutable(),
                arguments: arguments ?? CommandLine.arguments, readyTimeout: readyTimeout)
        }
    }

    private func upgradeError(_ message: String) -> ServerError {
        ServerError(.upgradeFailed, server: "", host: "", portsTried: [], message: "upgrade failed: \(message)")
    }

    private func performUpgrade(executable: String, arguments: [String], readyTimeout: Duration) async throws -> Int32 {
        if case .reject(let reason) = state.withLock({ $0.machine.beginUpgrade() }) {
            throw upgradeError(reason + "; this process goes on serving")
        }
        let sockets = state.withLock { locals in
            locals.servers.compactMap { entry -> ProcessUpgrade.PassedSocket? in
                guard let socket = entry.server.listeningSocket else { return nil }
                return .init(name: entry.server.config.name, fd: socket.fd, shared: socket.inherited)
            } + locals.sideListeners.filter(\.isStillOpen).map { .init(name: $0.name, fd: $0.fd, shared: $0.inherited) }
        }
        let child: ProcessUpgrade.Child
        do {
            child = try ProcessUpgrade.spawn(executable: executable, arguments: arguments, sockets: sockets)
        } catch {
            state.withLock { $0.machine.upgradeFailed() }
            throw upgradeError("cannot start \(executable): \(error); this process goes on serving")
        }
        let pid = child.pid
        logger.info(
            "upgrade: started \(executable) as process \(pid) with \(sockets.count) sockets; waiting up to \(readyTimeout) for it to serve",
            metadata: ["pid": "\(pid)"])
        notifier?.status("upgrading: waiting for process \(pid)")
        // A shutdown that begins meanwhile cancels the wait (see the manager's drain).
        let wait = Task { await ProcessUpgrade.waitForReady(child.readiness, timeout: readyTimeout) }
        let shuttingDown = state.withLock { locals -> Bool in
            locals.upgradeWait = wait
            return locals.machine.isShuttingDownOrFinished
        }
        if shuttingDown { wait.cancel() }
        let outcome = await withTaskCancellationHandler {
            await wait.value
        } onCancel: {
            wait.cancel()
        }
        state.withLock { $0.upgradeWait = nil }

        switch outcome {
        case .ready:
            switch state.withLock({ $0.machine.upgradeSucceeded() }) {
            case .handOver(let group):
                logger.info(
                    "upgrade: process \(pid) serves; this process (\(getpid())) stops accepting, drains and exits",
                    metadata: ["pid": "\(pid)"])
                notifier?.send("MAINPID=\(pid)\nSTATUS=handed over to process \(pid)")
                await group.triggerGracefulShutdown()
                return pid
            case .stopNewProcess:
                stopAbandoned(pid)
                throw upgradeError("a shutdown began while process \(pid) started; it was sent SIGTERM")
            }
        case .ended:
            state.withLock { $0.machine.upgradeFailed() }
            let how = await ProcessUpgrade.reap(pid)
            notifier?.status("upgrade failed; serving")
            throw upgradeError("the new process \(pid) (\(executable)) \(how) before it was ready; this process goes on serving")
        case .timedOut:
            state.withLock { $0.machine.upgradeFailed() }
            stopAbandoned(pid)
            notifier?.status("upgrade failed; serving")
            throw upgradeError(
                "the new process \(pid) (\(executable)) did not report ready within \(readyTimeout) and was sent SIGTERM; this process goes on serving")
        case .cancelled:
            state.withLock { $0.machine.upgradeFailed() }
            stopAbandoned(pid)
            throw upgradeError("a shutdown began while process \(pid) started; it was sent SIGTERM")
        }
    }

    /// Sends SIGTERM to a new process that will not take over, and logs how it ends.
    private func stopAbandoned(_ pid: pid_t) {
        kill(pid, SIGTERM)
        Task { [logger] in
            let how = await ProcessUpgrade.reap(pid)
            logger.notice("upgrade: abandoned process \(pid) \(how)", metadata: ["pid": "\(pid)"])
        }
    }
}
