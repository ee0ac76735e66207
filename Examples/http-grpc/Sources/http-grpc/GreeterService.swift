import GRPCCore

/// The example's gRPC service: `SayHello`, and `Wait`, a call as long as the client asks for
/// (to see what a shutdown does to a call in flight).
struct GreeterService: Greeter_V1_Greeter.SimpleServiceProtocol {
    func sayHello(
        request: Greeter_V1_HelloRequest, context: GRPCCore.ServerContext
    ) async throws -> Greeter_V1_HelloReply {
        .with { $0.message = Greeting.message(for: request.name) }
    }

    func wait(
        request: Greeter_V1_WaitRequest, context: GRPCCore.ServerContext
    ) async throws -> Greeter_V1_WaitReply {
        let start = ContinuousClock.now
        do {
            try await Task.sleep(for: .milliseconds(request.milliseconds))
        } catch {
            // Cancelled: the client went away, or the server's shutdown deadline passed.
            throw RPCError(code: .cancelled, message: "the call was cancelled before it finished")
        }
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        return .with { $0.waitedMilliseconds = UInt32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000) }
    }
}
