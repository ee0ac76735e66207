import GRPCCore
import Synchronization

/// The standard gRPC health checking service (`grpc.health.v1.Health`, Check and Watch).
///
/// Every service starts NOT_SERVING; the gRPC server sets them SERVING once it listens, and
/// NOT_SERVING again the moment a graceful shutdown begins (when the HTTP servers' `/readyz`
/// turns 503). `""` is the whole server. Check of an unknown service fails with NOT_FOUND; Watch
/// of one answers SERVICE_UNKNOWN and stays open, as the protocol says. Watches end when the
/// server stops accepting, after their last status (NOT_SERVING) was sent.
final class HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol, Sendable {
    typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status]
        var watchers: [Int: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
        var nextWatcher = 0
        var ended = false
    }

    private let state: Mutex<State>

    /// A health service for the whole server (`""`) and each of `services` (full names, such as
    /// `greeter.v1.Greeter`).
    init(services: [String]) {
        var statuses: [String: Status] = ["": .notServing]
        for service in services { statuses[service] = .notServing }
        state = Mutex(State(statuses: statuses))
    }

    /// Sets every known service (and the server) to `status`, and tells their watchers.
    func setAll(_ status: Status) {
        state.withLock { state in
            for service in state.statuses.keys { state.statuses[service] = status }
            for watcher in state.watchers.values where state.statuses[watcher.service] != nil {
                watcher.continuation.yield(status)
            }
        }
    }

    /// The current status of `service`, or `nil` if it is unknown.
    func status(of service: String) -> Status? {
        state.withLock { $0.statuses[service] }
    }

    /// Ends every open Watch (after the statuses already sent) and any Watch that starts later.
    func endWatches() {
        let continuations = state.withLock { state in
            state.ended = true
            defer { state.watchers = [:] }
            return state.watchers.values.map(\.continuation)
        }
        for continuation in continuations { continuation.finish() }
    }

    func check(
        request: Grpc_Health_V1_HealthCheckRequest, context: GRPCCore.ServerContext
    ) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard let status = status(of: request.service) else {
            throw RPCError(code: .notFound, message: "unknown service '\(request.service)'")
        }
        return .with { $0.status = status }
    }

    func watch(
        request: Grpc_Health_V1_HealthCheckRequest,
        response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: GRPCCore.ServerContext
    ) async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: Status.self, bufferingPolicy: .unbounded)
        let id = state.withLock { state -> Int in
            continuation.yield(state.statuses[request.service] ?? .serviceUnknown)
            if state.ended {
                continuation.finish()
                return -1
            }
            let id = state.nextWatcher
            state.nextWatcher += 1
            state.watchers[id] = (request.service, continuation)
            return id
        }
        defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
        var last: Status?
        for await status in stream where status != last {
            try await response.write(.with { $0.status = status })
            last = status
        }
    }
}
