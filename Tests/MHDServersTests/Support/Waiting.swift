@testable import MHDServers
import Glibc
import Synchronization
import Testing

struct WaitTimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Checks `condition` every 10 ms until it holds. For states that only a probe can observe
/// (a port that refuses, a counter read over HTTP); anything the test itself can be told about
/// uses a ``Gate`` instead. Fails the test loudly (throws) when `timeout` passes first.
func waitUntil(
    _ what: String = "condition", timeout: Duration = .seconds(10),
    sourceLocation: SourceLocation = #_sourceLocation, _ condition: @Sendable () async -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while await !condition() {
        if ContinuousClock.now > deadline {
            Issue.record("timed out after \(timeout) waiting for \(what)", sourceLocation: sourceLocation)
            throw WaitTimedOut(what: what)
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A one-shot event: `open()` once, and every `wait()` (before or after) returns. Lets a test
/// hold a handler exactly as long as it wants, with no sleeps.
final class Gate: Sendable {
    private struct State {
        var isOpen = false
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        var cancelled: Set<Int> = []
    }
    private let state = Locked(State())

    init() {}

    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.isOpen = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    var isOpen: Bool { state.withLock { $0.isOpen } }

    /// Waits until the gate opens; throws `CancellationError` if the task is cancelled first.
    func wait() async throws {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    if state.isOpen { return .success(()) }
                    if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
                // Not registered yet: the registration sees this and throws instead.
                state.cancelled.insert(id)
                return nil
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Waits until the gate opens; fails the test and throws ``WaitTimedOut`` after `timeout`.
    func wait(
        _ what: String, timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.wait() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw WaitTimedOut(what: what)
                }
                defer { group.cancelAll() }
                try await group.next()
            }
        } catch let error as WaitTimedOut {
            Issue.record("timed out after \(timeout) waiting for \(what)", sourceLocation: sourceLocation)
            throw error
        }
    }
}

/// Counts events and lets a test wait for a number of them.
final class Counter: Sendable {
    private let value = Locked(0)
    private let reached = Locked<[(Int, Gate)]>([])

    func increment() {
        let now = value.withLock { $0 += 1; return $0 }
        let gates = reached.withLock { list -> [Gate] in
            let due = list.filter { $0.0 <= now }.map(\.1)
            list.removeAll { $0.0 <= now }
            return due
        }
        for gate in gates { gate.open() }
    }

    var count: Int { value.withLock { $0 } }

    /// Waits until the count reaches `target`; fails the test after `timeout`.
    func wait(
        for target: Int, _ what: String, timeout: Duration = .seconds(10),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        if try await reaches(target, within: timeout) { return }
        Issue.record("timed out after \(timeout) waiting for \(what)", sourceLocation: sourceLocation)
        throw WaitTimedOut(what: what)
    }

    /// Whether the count reaches `target` within `timeout`. Records nothing: usable inside a
    /// handler, away from the test's own task.
    func reaches(_ target: Int, within timeout: Duration) async throws -> Bool {
        let gate = Gate()
        let already = value.withLock { current -> Bool in
            if current >= target { return true }
            reached.withLock { $0.append((target, gate)) }
            return false
        }
        if already { return true }
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await gate.wait()
                return true
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }
}

/// A value shared between a test and the handlers or hooks it installs.
final class Shared<Value: Sendable>: Sendable {
    private let storage: Locked<Value>
    init(_ value: Value) { storage = Locked(value) }
    var value: Value {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }
}

/// The sanitizers the tests run under in CI (`scripts/test.sh --sanitizers`): they slow every
/// byte down and keep memory of their own, so the large transfers shrink under them and
/// resident-memory bounds are not checked.
enum Sanitizers {
    /// Whether ThreadSanitizer's or AddressSanitizer's runtime is in the process.
    static let active: Bool = {
        guard let process = dlopen(nil, RTLD_NOW) else { return false }
        return dlsym(process, "__asan_init") != nil || dlsym(process, "__tsan_init") != nil
    }()

    /// `bytes`, or 64 MiB under a sanitizer.
    static func transferSize(_ bytes: Int) -> Int { active ? min(bytes, 64 << 20) : bytes }
}
