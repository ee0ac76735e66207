/// Reloading: certificates read again, and the lifecycles' own configuration.
extension ServerManager {
    /// Reloads, as SIGHUP does: every server whose TLS certificate and key come from files
    /// (``ServerConfig/TLS/files(certificate:privateKey:)``) reads them again and, if they
    /// changed, switches to them with the hand-over of ``restartServer(named:)``: new
    /// connections get the new certificate, open ones finish on the old. If the new files
    /// cannot be read or the engine refuses them (a key that does not match, a damaged
    /// certificate), the server keeps its certificate and one error names the server and the
    /// reason. Then every lifecycle's ``ServerLifecycle/onReload(context:)`` runs, then the
    /// callbacks registered with ``onReload(_:)``. Runtime changes run one at a time.
    ///
    /// ```swift
    /// router.post("/admin/reload") { _ in
    ///     await manager.reload()
    ///     return .text("reloaded")
    /// }
    /// ```
    public func reload() async {
        _ = try? await changes.run {
            guard state.withLock({ $0.machine.acceptsRuntimeChanges }) else {
                logger.notice("reload ignored: the manager is not running")
                return
            }
            for entry in state.withLock({ $0.servers }) { await reloadCertificate(of: entry) }
            for entry in state.withLock({ $0.servers }) {
                do {
                    try await entry.lifecycle.onReload(context: entry.context)
                } catch {
                    logger.error(
                        "\(entry.server.config.name): reload failed: \(error)", metadata: ["server": "\(entry.server.config.name)"])
                }
            }
            for callback in state.withLock({ $0.reloadCallbacks }) {
                do {
                    try await callback()
                } catch {
                    logger.error("reload failed: \(error)")
                }
            }
            logger.info("reload finished")
        }
    }

    /// Registers a callback that runs on each reload (SIGHUP, ``reload()``), after the servers'
    /// hooks, in registration order; an error it throws is logged.
    ///
    /// ```swift
    /// manager.onReload { try await settings.load() }
    /// ```
    public func onReload(_ callback: @escaping @Sendable () async throws -> Void) {
        state.withLock { $0.reloadCallbacks.append(callback) }
    }

    /// Reads the server's certificate files again and hands over to a server using them if
    /// they changed; logs and keeps the old certificate if they cannot be used.
    private func reloadCertificate(of entry: Managed) async {
        let name = entry.server.config.name
        guard let current = entry.definition.config.tls, current.certificateFile != nil else { return }
        let fresh: ServerConfig.TLS
        do {
            guard let read = try current.reread() else { return }
            fresh = read
        } catch {
            logger.error(
                "\(name): keeping the current certificate: cannot read the new one: \(error)", metadata: ["server": "\(name)"])
            return
        }
        guard fresh != current else {
            logger.info("\(name): certificate files unchanged", metadata: ["server": "\(name)"])
            return
        }
        var definition = entry.definition
        definition.config.tls = fresh
        do {
            _ = try await handOver(from: entry, to: definition, replacing: false)
            logger.info("\(name): now serving the new certificate", metadata: ["server": "\(name)"])
        } catch {
            logger.error(
                "\(name): keeping the current certificate: the new one was refused: \(error)",
                metadata: ["server": "\(name)"])
        }
    }
}
