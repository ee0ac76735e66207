import CMHDLoop

#if canImport(Glibc)
import Glibc
#endif

// loop-bench PORT [LOOPS] [--suspend-always] [--reuseport]
//
//   LOOPS             event-loop threads, one daemon each (default 1)
//   --suspend-always  suspend every async request's connection while its task runs (no inline
//                     draining of jobs made ready during the access callback)
//   --reuseport       one SO_REUSEPORT socket per loop instead of one socket shared by all
//                     daemons (MHD_OPTION_LISTEN_SOCKET with a dup for each)

var positional: [String] = []
var inlineDrain = true
var reusePort = false
for argument in CommandLine.arguments.dropFirst() {
    switch argument {
    case "--suspend-always": inlineDrain = false
    case "--reuseport": reusePort = true
    default: positional.append(argument)
    }
}
guard (1...2).contains(positional.count), let port = Int32(positional[0]), (1...65535).contains(port),
    let loops = positional.count > 1 ? Int(positional[1]) : 1, (1...64).contains(loops)
else {
    fail("usage: loop-bench PORT [LOOPS] [--suspend-always] [--reuseport]\n")
    exit(64)
}

/// Prints `message` to standard error (through the descriptor: the C `stderr` global is not
/// concurrency-safe in Swift 6).
func fail(_ message: String) {
    var text = message
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

signal(SIGPIPE, SIG_IGN)
Server.makeResponses()

let shared: Int32 = reusePort ? -1 : loop_listen(port, 0)
if !reusePort, shared < 0 {
    fail("loop-bench: cannot listen on 127.0.0.1:\(port): \(String(cString: strerror(errno)))\n")
    exit(1)
}

var started: [EventLoop] = []
for index in 0..<loops {
    let fd = reusePort ? loop_listen(port, 1) : dup(shared)
    guard fd >= 0 else {
        fail("loop-bench: cannot listen on 127.0.0.1:\(port): \(String(cString: strerror(errno)))\n")
        exit(1)
    }
    let loop = EventLoop(index: index, inlineDrain: inlineDrain)
    guard loop.startDaemon(listenFD: fd) else {
        fail("loop-bench: MHD_start_daemon failed\n")
        exit(1)
    }
    started.append(loop)
}
if shared >= 0 { close(shared) }

for loop in started { loop.startThread() }

fail("loop-bench listening on http://127.0.0.1:\(port) (\(loops) loop\(loops == 1 ? "" : "s"), "
    + "\(inlineDrain ? "inline drain" : "suspend always"), \(reusePort ? "SO_REUSEPORT sockets" : "one shared socket"))\n")

while true { pause() }
