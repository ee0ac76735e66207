import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import MHDServers
import ServiceLifecycle
import Synchronization

/// A grpc-swift-2 server as a side service of a ``ServerManager``: bound with the manager's
/// port fallback, ready when it listens, NOT_SERVING in its health service from the first
/// instant of a shutdown, then draining with the HTTP servers, within the manager's deadline.
///
/// grpc-swift-2's `GRPCServer` is not a swift-service-lifecycle `Service` itself; this wrapper
/// is what makes it one.
final class GRPCService: Service, ReadinessReporting {
    private let manager: ServerManager
    private let config: ServerConfig
    private let services: [any RegistrableRPCService]
    private let health: HealthService
    private let logger: Logger
    private let ready = ReadyEvent()
    private let phase = Mutex(Phase.idle)
    /// The manager's shutdown has begun (health stays NOT_SERVING from then on).
    private let withdrawn = Mutex(false)

    /// Where the server is, so that a shutdown at any instant of its start is carried out once.
    private enum Phase {
        case idle, starting, listening
        /// Asked to stop while starting: stops as soon as it listens.
        case stopRequested
        case stopped

        /// Whether to start serving (not if a shutdown came first).
        mutating func startServing() -> Bool {
            guard case .idle = self else { return false }
            self = .starting
            return true
        }

        /// The server listens; whether it may go on serving.
        mutating func listening() -> Bool {
            guard case .starting = self else {
                self = .stopped
                return false
            }
            self = .listening
            return true
        }

        /// A shutdown; whether the server listens (and must be told now).
        mutating func stop() -> Bool {
            switch self {
            case .idle: self = .stopped
            case .starting: self = .stopRequested
            case .listening: self = .stopped; return true
            case .stopRequested, .stopped: break
            }
            return false
        }
    }

    /// A gRPC server for `config` (its name, host, port and fallback ports), serving `services`
    /// beside `health`.
    init(
        manager: ServerManager, config: ServerConfig, services: [any RegistrableRPCService],
        health: HealthService, logger: Logger
    ) {
        self.manager = manager
        self.config = config
        self.services = services
        self.health = health
        self.logger = logger
    }

    /// Where the server listens, once it does.
    var address: BoundAddress? { ready.address }

    func run() async throws {
        let listener: BoundListener
        do {
            // Every candidate port bound for real, the next one only when it is in use: the
            // same fallback (and the same error, naming host and ports) as the HTTP servers.
            listener = try manager.bindListener(config)
        } catch {
            ready.fail(error)
            throw error
        }
        // A shutdown that came first: never serve (the listener closes when released).
        guard phase.withLock({ $0.startServing() }) else {
            ready.fail(CancellationError())
            return
        }
        guard let descriptor = listener.takeDescriptor() else { return }
        let transport = HTTP2ServerTransport.Posix(
            listeningSocketDescriptor: descriptor, transportSecurity: .plaintext)
        let server = GRPCServer(transport: transport, services: services + [health])
        do {
            try await withGracefulShutdownHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    // serve() always reaches the transport's listen (nothing stops the server
                    // before it listens, see below), so the listening address always resolves.
                    group.addTask { try await server.serve() }
                    _ = try await transport.listeningAddress
                    if phase.withLock({ $0.listening() }) {
                        withdrawn.withLock { if !$0 { health.setAll(.serving) } }
                        ready.succeed(listener.address)
                    } else {
                        // Asked to stop while starting: stop now that it listens.
                        ready.fail(CancellationError())
                        server.beginGracefulShutdown()
                    }
                }
            } onGracefulShutdown: {
                // NOT_SERVING, Watches end, no new calls; calls in flight finish (or are
                // cancelled at the manager's deadline). GRPCServer.beginGracefulShutdown() before
                // serve() listens would stop the server without its transport ever listening (and
                // the listening address would never resolve): until then it is only noted.
                let listening = self.phase.withLock { $0.stop() }
                self.health.setAll(.notServing)
                self.health.endWatches()
                if listening { server.beginGracefulShutdown() }
            }
        } catch {
            ready.fail(error)
            throw error
        }
        logger.info("\(config.name) stopped", metadata: ["server": "\(config.name)"])
    }

    func waitUntilReady() async throws {
        _ = try await ready.wait()
    }

    func readinessWithdrawn() async {
        // The shutdown has begun: load balancers and orchestrators watching gRPC health move
        // traffic away during the drain delay, while calls are still served.
        withdrawn.withLock { withdrawn in
            withdrawn = true
            health.setAll(.notServing)
        }
    }
}

/// Set once, when the server listens or cannot; waited for by the manager's start (a waiter
/// that is cancelled stops waiting).
final class ReadyEvent: Sendable {
    private struct State {
        var result: Result<BoundAddress, any Error>?
        var waiters: [Int: CheckedContinuation<BoundAddress, any Error>] = [:]
        var nextWaiter = 0
    }
    private let state = Mutex(State())

    var address: BoundAddress? { state.withLock { try? $0.result?.get() } }

    func succeed(_ address: BoundAddress) { settle(.success(address)) }
    func fail(_ error: any Error) { settle(.failure(error)) }

    private func settle(_ result: Result<BoundAddress, any Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<BoundAddress, any Error>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    func wait() async throws -> BoundAddress {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let result = state.withLock { state -> Result<BoundAddress, any Error>? in
                    if let result = state.result { return result }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let result { continuation.resume(with: result) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }
}
