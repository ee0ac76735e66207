import CMHDLoop
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One Swift-owned thread that drives one libmicrohttpd daemon in external epoll mode and is
/// also a `TaskExecutor`: tasks started with `Task(executorPreference: loop)` run their jobs here.
///
/// - Jobs enqueued on the loop thread itself go into a plain array (no lock, no wake-up).
/// - Jobs enqueued from any other thread go into a locked queue; the enqueuer that finds it
///   empty writes the loop's eventfd (one wake-up per batch).
/// - The loop sleeps in `epoll_wait` on its own epoll set (the eventfd and the daemon's epoll
///   descriptor) with the daemon's timeout (`MHD_get_timeout`), and calls `MHD_run` only when
///   the daemon's descriptor is ready, its timeout is due, or a connection was resumed.
/// - Connections are resumed on the loop thread only (``resume(_:)``): in external mode the
///   daemon has no wake-up channel of its own, so a resume from another thread would not be
///   seen until the next event.
final class EventLoop: TaskExecutor, @unchecked Sendable {
    let index: Int
    /// Run jobs that became ready during an access callback before the callback returns, so a
    /// handler that does not really wait answers without suspending its connection.
    let inlineDrain: Bool
    private(set) var daemon: OpaquePointer?
    private let epollFD: Int32
    private let wakeFD: Int32
    private var daemonFD: Int32 = -1
    private let owner = Atomic<UInt>(0)

    // Loop-thread only.
    private var local: [UnownedJob] = []
    private var head = 0
    private var spare: [UnownedJob] = []
    private var draining = false
    /// A connection was resumed since the last `MHD_run`. In external mode the daemon has no
    /// inter-thread channel (no eventfd of its own), so nothing wakes it: the loop must run it.
    private var daemonDue = false

    // Any thread.
    private let remote = Mutex<[UnownedJob]>([])

    /// How many jobs one pass of the loop (or one inline drain) runs at most.
    static let budget = 128

    init(index: Int, inlineDrain: Bool) {
        self.index = index
        self.inlineDrain = inlineDrain
        epollFD = loop_epoll_create()
        wakeFD = loop_eventfd()
        precondition(epollFD >= 0 && wakeFD >= 0, "epoll/eventfd failed")
        local.reserveCapacity(256)
        spare.reserveCapacity(256)
    }

    /// Starts this loop's daemon on `listenFD` (which the daemon then owns).
    func startDaemon(listenFD: Int32) -> Bool {
        let cls = Unmanaged.passUnretained(self).toOpaque()
        daemon = loop_start_daemon(listenFD, Server.access, cls, Server.completed, cls)
        guard let daemon else { return false }
        daemonFD = loop_daemon_epoll_fd(daemon)
        return daemonFD >= 0
    }

    /// Resumes a suspended connection of this loop's daemon (on the loop thread only).
    func resume(_ connection: OpaquePointer) {
        MHD_resume_connection(connection)
        daemonDue = true
    }

    var isCurrent: Bool { owner.load(ordering: .relaxed) == UInt(bitPattern: Int(bitPattern: pthread_self())) }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if isCurrent {
            local.append(job)
            return
        }
        let wasEmpty = remote.withLock { queue in
            let empty = queue.isEmpty
            queue.append(job)
            return empty
        }
        if wasEmpty { loop_eventfd_signal(wakeFD) }
    }

    /// Runs up to `budget` local jobs (including ones they make ready). Returns whether jobs remain.
    @discardableResult
    func runLocal(budget: Int = EventLoop.budget) -> Bool {
        guard !draining else { return head < local.count }
        draining = true
        defer { draining = false }
        var ran = 0
        let executor = asUnownedTaskExecutor()
        while head < local.count, ran < budget {
            let job = local[head]
            head += 1
            ran += 1
            job.runSynchronously(on: executor)
        }
        if head == local.count {
            local.removeAll(keepingCapacity: true)
            head = 0
            return false
        }
        return true
    }

    /// Moves the jobs other threads enqueued to the local queue. Call after clearing the
    /// eventfd: a job enqueued after the swap finds the queue empty and signals again.
    private func takeRemote() {
        remote.withLock { swap(&$0, &spare) }
        local.append(contentsOf: spare)
        spare.removeAll(keepingCapacity: true)
    }

    /// Runs the loop on a new thread. (Not from a closure written in main.swift: top-level code
    /// is main-actor isolated, and the thread would fail the isolation check.)
    func startThread() {
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            Unmanaged<EventLoop>.fromOpaque(argument!).takeRetainedValue().run()
        }, Unmanaged.passRetained(self).toOpaque())
        precondition(rc == 0, "pthread_create failed")
    }

    /// The loop; never returns.
    func run() -> Never {
        owner.store(UInt(bitPattern: Int(bitPattern: pthread_self())), ordering: .relaxed)
        precondition(loop_epoll_add(epollFD, wakeFD, 0) == 0 && loop_epoll_add(epollFD, daemonFD, 1) == 0)
        var tags = [UInt32](repeating: 0, count: 16)
        var skippedPoll = false
        while true {
            let pending = runLocal()
            if daemonDue, !skippedPoll {
                // A connection was resumed: run the daemon at once. The next pass polls, so the
                // eventfd and the timeouts are never starved.
                daemonDue = false
                skippedPoll = true
                _ = MHD_run(daemon)
                continue
            }
            skippedPoll = false
            let daemonTimeout = loop_daemon_timeout(daemon)
            let timeout: Int32 = pending || daemonDue ? 0 : daemonTimeout
            let count = tags.withUnsafeMutableBufferPointer { loop_epoll_wait(epollFD, $0.baseAddress, 16, timeout) }
            // A resume, or the daemon's own timeout (0 when it has buffered work), is due.
            var runDaemon = daemonDue || (count == 0 && daemonTimeout == timeout && timeout >= 0)
            daemonDue = false
            for i in 0..<Int(count) {
                if tags[i] == 0 {
                    loop_eventfd_clear(wakeFD)
                    takeRemote()
                } else {
                    runDaemon = true
                }
            }
            if runDaemon { _ = MHD_run(daemon) }
        }
    }
}
