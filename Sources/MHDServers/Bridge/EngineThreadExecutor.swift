#if canImport(Glibc)
import Glibc
#endif

/// The task executor async handlers prefer: work that becomes ready on the engine thread
/// while that thread is running a handler (a `Task.yield()`, an uncontended actor, a
/// continuation resumed by the handler itself) runs right there, before the access callback
/// returns, instead of crossing to Swift's shared pool and back through a suspend/resume of
/// the connection. Work that becomes ready anywhere else (a timer, I/O, another task) goes to
/// the shared pool as usual, and the connection is resumed from there.
///
/// Each engine thread has its own queue (thread-local), open only while ``drain(_:)`` runs it:
/// a job enqueued on an engine thread outside a drain, or on any other thread, is forwarded to
/// the global concurrent executor. A drain runs at most ``budget`` jobs, then forwards the rest,
/// so a handler that keeps yielding cannot hold the engine thread.
final class EngineThreadExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = EngineThreadExecutor()

    /// The jobs made ready on this thread during a drain.
    final class Queue {
        var jobs: [UnownedJob] = []
        var head = 0
        var open = false
    }

    private let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<Queue>.fromOpaque(pointer).release() }
        }
        return key
    }()

    /// How many jobs one drain runs at most.
    static let budget = 64

    private func queue(create: Bool) -> Queue? {
        if let pointer = pthread_getspecific(key) { return Unmanaged<Queue>.fromOpaque(pointer).takeUnretainedValue() }
        guard create else { return nil }
        let queue = Queue()
        pthread_setspecific(key, Unmanaged.passRetained(queue).toOpaque())
        return queue
    }

    func enqueue(_ job: consuming ExecutorJob) {
        if let queue = queue(create: false), queue.open {
            queue.jobs.append(UnownedJob(job))
        } else {
            globalConcurrentExecutor.enqueue(job)
        }
    }

    /// Runs `start` (which starts a task preferring this executor) with this thread's queue
    /// open, then runs what became ready here, up to the budget.
    func drain(_ start: () -> Void) {
        let queue = queue(create: true)!
        guard !queue.open else { return start() }  // nested: the outer drain runs the jobs
        queue.open = true
        start()
        var ran = 0
        while queue.head < queue.jobs.count, ran < Self.budget {
            let job = queue.jobs[queue.head]
            queue.head += 1
            ran += 1
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
        queue.open = false
        // Over budget: the rest goes to the shared pool.
        while queue.head < queue.jobs.count {
            let job = queue.jobs[queue.head]
            queue.head += 1
            globalConcurrentExecutor.enqueue(ExecutorJob(job))
        }
        queue.jobs.removeAll(keepingCapacity: true)
        queue.head = 0
    }
}
