import Logging
import ServiceLifecycle

/// A service that shares a ``ServerManager``'s lifetime beside its HTTP servers (a gRPC server,
/// a queue consumer), and when it is told to stop.
///
/// Any `Service` passed to ``ServerManager/runAll(_:alongside:signals:reloadSignals:upgradeSignals:)`` is a side service
/// that stops with the drain: it is asked to shut down gracefully the moment the HTTP servers
/// stop accepting, and cancelled if it is still running at the manager's one deadline (the drain
/// delay plus ``ServerManager/shutdownTimeout``), or at once on a second signal. Wrap it to have
/// it asked only after the HTTP servers have stopped (for a service they depend on), still
/// within the same deadline.
///
/// ```swift
/// struct QueueConsumer: Service {
///     func run() async throws { try? await gracefulShutdown() }   // consume until asked to stop
/// }
/// struct AuditLog: Service {
///     func run() async throws { try? await gracefulShutdown() }   // flush, then return
/// }
/// try await manager.runAll(servers, alongside: [QueueConsumer(), SideService(AuditLog(), stops: .afterTheServers)])
/// ```
public struct SideService: Service {
    /// When the service is asked to shut down.
    public enum StopOrder: Sendable {
        /// When the HTTP servers stop accepting (the default for any service).
        case withTheDrain
        /// After every HTTP server has stopped.
        case afterTheServers
    }

    /// The service.
    public let service: any Service
    /// When it is asked to shut down.
    public let stopOrder: StopOrder

    /// Wraps `service`.
    ///
    /// ```swift
    /// let auditLog = SideService(jobRunner, stops: .afterTheServers)
    /// ```
    public init(_ service: any Service, stops: StopOrder = .withTheDrain) {
        self.service = service
        self.stopOrder = stops
    }

    /// Runs the service (as a manager does it; there is nothing to do when run directly).
    public func run() async throws { try await service.run() }
}

/// A side service that can say when it is ready (its port bound, its first connection made):
/// the manager's start — ``ServerManager/waitUntilStarted()``, the ``ServerLifecycle/onStarted(_:context:)``
/// hooks — waits for it, and the servers' readiness probes answer 503 until then. When a shutdown
/// begins it is told in the same instant as the servers' probes turn 503
/// (``readinessWithdrawn()``), before the drain delay, so that it can report not-ready in its own
/// protocol (a gRPC health status) while it still serves.
///
/// ```swift
/// struct Consumer: Service, ReadinessReporting {
///     let connected = AsyncStream<Void>.makeStream()
///     func run() async throws {
///         connected.continuation.yield()   // connected to the broker
///         try? await gracefulShutdown()
///     }
///     func waitUntilReady() async throws {
///         for await _ in connected.stream { return }
///     }
/// }
/// ```
public protocol ReadinessReporting: Service {
    /// Returns once the service is ready; throws if it cannot become ready (the start fails).
    func waitUntilReady() async throws

    /// Called once when the manager's shutdown begins, as the servers' readiness probes turn 503
    /// and before the drain delay; the service keeps serving until it is asked to shut down.
    /// Return promptly: the drain waits for it. Does nothing by default.
    ///
    /// ```swift
    /// func readinessWithdrawn() async { health.set(.notServing) }
    /// ```
    func readinessWithdrawn() async
}

extension ReadinessReporting {
    /// Does nothing.
    public func readinessWithdrawn() async {}
}

/// Runs one side service for a manager, in a service group of its own so that the manager can
/// ask it to shut down when it decides, and cancel it at the deadline or on a forced stop.
final class SideServiceRunner: Service, Sendable {
    let service: any Service
    let stopOrder: SideService.StopOrder
    let name: String
    private let group: ServiceGroup
    /// The manager's one deadline, once its drain has begun (or a default from now).
    private let deadline: @Sendable () -> ContinuousClock.Instant
    private let state = Locked(Locals())

    private struct Locals {
        var task: Task<Void, any Error>?
        var deadlineTimer: Task<Void, Never>?
        var cancelled = false
        /// The manager asked it to stop (drain, deadline or forced stop).
        var stopping = false
        /// `run()` has returned: no deadline timer is needed any more.
        var finished = false
    }

    /// What to wait for before the manager reports its start, if the service says.
    var readiness: (any ReadinessReporting)? { service as? any ReadinessReporting }

    init(_ service: any Service, logger: Logger, deadline: @escaping @Sendable () -> ContinuousClock.Instant) {
        self.deadline = deadline
        if let side = service as? SideService {
            self.service = side.service
            self.stopOrder = side.stopOrder
        } else {
            self.service = service
            self.stopOrder = .withTheDrain
        }
        name = "\(type(of: self.service))"
        group = ServiceGroup(services: [self.service], logger: logger)
    }

    func run() async throws {
        let task = state.withLock { locals -> Task<Void, any Error> in
            let task = Task { [group] in try await group.run() }
            locals.task = task
            if locals.cancelled { task.cancel() }
            return task
        }
        defer {
            state.withLock { locals in
                locals.finished = true
                return locals.deadlineTimer
            }?.cancel()
        }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                do {
                    try await task.value
                } catch {
                    // Cancelled by the manager (deadline, forced stop): that is how it ends.
                    if !state.withLock({ $0.cancelled }) { throw error }
                }
                // Stopped ahead of its turn because the manager asked: the manager's group must
                // not take that for an unexpected end, so wait for the group to reach it.
                if state.withLock({ $0.stopping }) && !Task.isCancelled { try? await gracefulShutdown() }
            } onGracefulShutdown: {
                // The manager's group reached this service: ask it to stop, if not asked yet,
                // by the manager's one deadline.
                Task { await self.shutDown(by: self.deadline()) }
            }
        } onCancel: {
            task.cancel()
        }
    }

    /// Asks the service to shut down gracefully, and cancels it if it still runs at `deadline`.
    func shutDown(by deadline: ContinuousClock.Instant) async {
        state.withLock { locals in
            locals.stopping = true
            // One timer; none once `run()` has returned (a forced stop can end it before the
            // drain gets here, and a timer started then would outlive everything).
            guard locals.deadlineTimer == nil, !locals.finished else { return }
            locals.deadlineTimer = Task { [weak self] in
                do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return }
                self?.cancel()
            }
        }
        await group.triggerGracefulShutdown()
    }

    /// Cancels the service now (forced stop, or the deadline).
    func cancel() {
        let task = state.withLock { locals -> Task<Void, any Error>? in
            locals.cancelled = true
            locals.stopping = true
            return locals.task
        }
        task?.cancel()
    }
}
