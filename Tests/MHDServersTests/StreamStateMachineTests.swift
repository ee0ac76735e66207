@testable import MHDServers
import Testing

/// The streamed-body state machines, without sockets: every ordering of writer, engine and
/// shutdown that the sockets tests cannot force.
@Suite("Stream state machines")
struct StreamStateMachineTests {
    static func read(_ state: inout StreamState, max: Int = 1 << 20) -> (StreamState.ReadResult, [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: max)
        let result = buffer.withUnsafeMutableBytes { state.read(into: $0) }
        if case .bytes(let count, _) = result { return (result, Array(buffer[0..<count])) }
        return (result, [])
    }

    @Test func theEngineSuspendsWhenNothingIsBufferedAndTheNextWriteResumesIt() {
        var state = StreamState(highWater: 100)
        #expect(Self.read(&state).0 == .suspend)
        #expect(state.engineSuspended)
        #expect(state.write([1, 2, 3]) == .resumeEngine)
        #expect(!state.engineSuspended)
        #expect(Self.read(&state) == (.bytes(count: 3, wakeWriter: false), [1, 2, 3]))
        #expect(state.finish() == .none)  // not suspended: nobody to resume
        #expect(Self.read(&state).0 == .endOfStream)
    }

    @Test func theWriterWaitsAboveHighWaterAndIsWokenBelowLowWater() {
        var state = StreamState(highWater: 10)
        #expect(state.write(Array(repeating: 7, count: 8)) == .proceed)
        #expect(state.write(Array(repeating: 8, count: 8)) == .wait)
        #expect(!state.writerMayProceed)
        // 16 buffered; reading 4 leaves 12 (> 5): the writer keeps waiting.
        #expect(Self.read(&state, max: 4).0 == .bytes(count: 4, wakeWriter: false))
        // Reading 7 more leaves 5 (= low water): the writer is woken.
        #expect(Self.read(&state, max: 7).0 == .bytes(count: 7, wakeWriter: true))
        #expect(state.writerMayProceed)
        // The rest comes out in order, across the chunk boundary.
        #expect(Self.read(&state).1 == Array(repeating: 8, count: 5))
    }

    @Test func aWriteWhileSuspendedAboveHighWaterResumesAndWaits() {
        var state = StreamState(highWater: 4)
        #expect(Self.read(&state).0 == .suspend)
        #expect(state.write(Array(repeating: 1, count: 9)) == .resumeEngineAndWait)
    }

    @Test func endingWhileSuspendedResumesTheEngineExactlyOnce() {
        var state = StreamState(highWater: 100)
        #expect(Self.read(&state).0 == .suspend)
        #expect(state.finish() == .resumeEngine)
        #expect(Self.read(&state).0 == .endOfStream)
        // A stream the server gives up on while it finishes (drain deadline) is cut off; the
        // engine, no longer suspended, is not resumed twice.
        var late = StreamState(highWater: 100)
        _ = late.write([1])
        _ = late.finish()
        #expect(late.fail() == .none)
        #expect(Self.read(&late).0 == .endWithError)
    }

    @Test func aFailedWriterStillSendsWhatItWroteThenEndsWithAnError() {
        var state = StreamState(highWater: 100)
        _ = state.write([1, 2])
        #expect(state.fail(sendBuffered: true) == .none)
        #expect(Self.read(&state) == (.bytes(count: 2, wakeWriter: false), [1, 2]))
        #expect(Self.read(&state).0 == .endWithError)
        #expect(state.write([3]) == .closed)
    }

    @Test func theServerGivingUpDropsTheBuffer() {
        var state = StreamState(highWater: 100)
        _ = state.write([1, 2])
        #expect(Self.read(&state).0 == .bytes(count: 2, wakeWriter: false))
        #expect(Self.read(&state).0 == .suspend)
        _ = state.write([3])  // resumes
        #expect(state.fail() == .none)
        #expect(Self.read(&state).0 == .endWithError)
    }

    @Test func aDeclaredLengthIsNeitherExceededNorCutShort() {
        var state = StreamState(highWater: 100, declaredLength: 4)
        #expect(state.write([1, 2, 3]) == .proceed)
        #expect(state.write([4, 5]) == .tooLong)
        #expect(state.finish() == .none)
        #expect(state.phase == .failed, "3 of 4 bytes: the body cannot end well")
        var exact = StreamState(highWater: 100, declaredLength: 2)
        _ = exact.write([1, 2])
        _ = exact.finish()
        #expect(exact.phase == .finishing)
    }

    @Test func closingStopsTheWriterAndForgetsTheSuspension() {
        var state = StreamState(highWater: 100)
        #expect(Self.read(&state).0 == .suspend)
        #expect(state.close() == true, "the writer was still writing: cancel it")
        #expect(!state.engineSuspended)
        #expect(state.write([1]) == .closed)
        #expect(state.finish() == .none)
    }

    // MARK: Uploads

    @Test func uploadChunksArriveInOrderAndTheEndFollows() {
        var state = UploadState(limit: 100, highWater: 10)
        #expect(state.receive([1, 2]) == .proceed)
        #expect(state.receive([3]) == .proceed)
        #expect(state.next() == .chunk([1, 2], resumeEngine: false))
        #expect(state.next() == .chunk([3], resumeEngine: false))
        #expect(state.next() == .wait)
        #expect(state.readerWaiting)
        #expect(state.receive([4]) == .wakeReader)
        #expect(!state.readerWaiting)
        #expect(state.complete() == .proceed)
        #expect(state.next() == .chunk([4], resumeEngine: false))
        #expect(state.next() == .end)
    }

    @Test func theEngineIsSuspendedAboveHighWaterAndResumedAtLowWater() {
        var state = UploadState(limit: 1000, highWater: 10)
        _ = state.receive(Array(repeating: 1, count: 6))
        #expect(state.shouldSuspend() == false)
        _ = state.receive(Array(repeating: 2, count: 6))
        #expect(state.shouldSuspend() == true)
        #expect(state.shouldSuspend() == false, "suspended once")
        // 12 buffered: taking 6 leaves 6 (> 5): still suspended.
        #expect(state.next() == .chunk(Array(repeating: 1, count: 6), resumeEngine: false))
        #expect(state.next() == .chunk(Array(repeating: 2, count: 6), resumeEngine: true))
        #expect(!state.engineSuspended)
    }

    @Test func aBodyPastTheLimitFailsTheReaderAndIsDropped() {
        var state = UploadState(limit: 5, highWater: 100)
        #expect(state.next() == .wait)
        #expect(state.receive([1, 2, 3]) == .wakeReader)
        #expect(state.receive([4, 5, 6]) == .proceed, "the reader was woken already")
        #expect(state.next() == .tooLarge, "what was buffered is dropped with the error")
        #expect(state.receive([7]) == .proceed)
        #expect(state.buffered == 0)
    }

    @Test func aReaderThatStopsEarlyDropsTheRestAndResumesASuspendedEngine() {
        var state = UploadState(limit: 1000, highWater: 2)
        _ = state.receive([1, 2, 3])
        #expect(state.shouldSuspend() == true)
        #expect(state.stopReading() == true, "suspended for this reader: resume")
        #expect(state.receive([4]) == .proceed)
        #expect(state.buffered == 0)
        #expect(state.next() == .cancelled)
        #expect(state.stopReading() == false, "resumed exactly once")
    }
}
