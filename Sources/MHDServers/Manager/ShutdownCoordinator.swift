import ServiceLifecycle

/// The last service of the manager's group, so the first to hear of a graceful shutdown: it
/// makes every server stop accepting at once, before the group stops them one by one.
struct ShutdownCoordinator: Service {
    let manager: ServerManager

    func run() async throws {
        do {
            try await gracefulShutdown()
            await manager.beginDrain()
        } catch {
            // Cancelled: the servers are cancelled too and stop at once.
        }
    }
}
