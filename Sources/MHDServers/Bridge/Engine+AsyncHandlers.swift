import CMicroHTTPD

/// Async handlers on the engine's threads, without blocking them.
extension Engine {
    /// Runs an async handler. It starts at once on this thread (`Task.immediate`), preferring
    /// the ``EngineThreadExecutor``, so a handler that never actually suspends — or whose
    /// awaits complete on this thread (`Task.yield()`, an uncontended actor) — answers right
    /// here with no thread hop and no suspend/resume. Only if it is still running when it first suspends is the connection
    /// suspended; its task then resumes the connection exactly once, and the engine calls back
    /// on its own thread where the response is queued. Both sides decide under the context's
    /// lock (see ``AsyncExchange``), so the task can never resume a connection that was not
    /// suspended, and a shutdown either abandons a suspended connection or prevents its
    /// suspension.
    func runAsync(
        _ context: EngineRequest, _ request: consuming Request,
        _ handler: @escaping @Sendable (Request) async throws -> Response
    ) -> MHD_Result {
        startHandler(context, request, handler)
        return awaitHandler(context)
    }

    /// Starts the handler's task at once on this thread (see ``runAsync(_:_:_:)``).
    func startHandler(
        _ context: EngineRequest, _ request: consuming Request,
        _ handler: @escaping @Sendable (Request) async throws -> Response
    ) {
        context.exchange = Locked(AsyncExchange())
        // The request reaches the task through its context: captured by the task's closure it
        // would be copied (a dozen references retained, and released again).
        context.handedOver = consume request
        // What the handler makes ready on this thread runs here before the callback returns
        // (see ``EngineThreadExecutor``): a handler whose awaits complete at once answers
        // without suspending the connection.
        var started: Task<Void, Never>?
        EngineThreadExecutor.shared.drain {
            started = Task.immediate(executorPreference: EngineThreadExecutor.shared) {
                // Taken while the task still runs synchronously on this thread.
                let request = context.handedOver.take()!
                let response: Response
                do {
                    response = try await handler(request)
                } catch {
                    // Cancelled by us (client gone, or abandoned at shutdown): not a handler failure.
                    let cancelled = context.exchange.withLock { $0.cancelledByServer }
                    response = cancelled ? Engine.shuttingDown : .failure(error, for: request)
                }
                // Resumed and deregistered in one step: a stream response suspends again.
                self.suspended.resume(id: ObjectIdentifier(context)) { context.finish(with: response) }
            }
        }
        let task = started!
        context.exchange.withLock { exchange in
            if !exchange.finishedInline { exchange.task = task }
        }
    }

    /// Answers with the handler's response when it is ready: at once if it finished, else
    /// after suspending the connection until its task resumes it.
    func awaitHandler(_ context: EngineRequest) -> MHD_Result {
        if let response = context.exchange.withLock({ $0.takeInlineResponse() }) {
            return queue(response, on: context)
        }
        // Still running: suspend the connection until the task finishes.
        context.fd = mhds_connection_fd(context.connection)
        var decision = AsyncExchange.SuspendDecision.refuse
        let registered = suspended.register(context) { stopping in
            context.exchange.withLock { exchange in
                decision = exchange.engineWillSuspend(serverStopping: stopping)
                guard decision == .suspend else { return false }
                MHD_suspend_connection(context.connection)
                return true
            }
        }
        if registered {
            context.phase = .suspended
            return .YES
        }
        if decision == .answer, let response = context.exchange.withLock({ $0.takeInlineResponse() }) {
            // It finished meanwhile on another thread.
            return queue(response, on: context)
        }
        // The server is stopping.
        context.cancelTask()
        return queue(Engine.shuttingDown, on: context, close: true)
    }
}

/// Handlers of routes that receive their body as a stream.
extension Engine {
    /// Starts the handler as soon as the headers are in; the body then feeds its
    /// ``RequestBodyStream`` and the response is queued once the whole request is read.
    func startStreamingHandler(
        _ context: EngineRequest, _ request: Request, _ handler: Router.Handler, _ route: Int, _ limit: Int
    ) {
        let upload = UploadStream(context: context, engine: self, limit: limit, highWater: RequestBodyStream.bufferSize)
        context.upload = upload
        context.route = route
        context.fd = mhds_connection_fd(context.connection)
        if let level = config.accessLogLevel, logger.logLevel <= level {
            context.accessLog = (
                request.method.rawValue, request.path,
                request.headers[.requestID].map { String($0.prefix(128)) }
                    ?? "\(config.name)-\(requestIDs.add(1, ordering: .relaxed).newValue)"
            )
        }
        var request = request
        request.upload = upload
        // However the handler ends, the rest of the body is dropped, never waited for.
        startHandler(context, request) { request in
            defer { upload.stopReading() }
            switch handler {
            case .sync(let body):
                var request = request
                return try body(&request)
            case .async(let body): return try await body(request)
            }
        }
    }
}
