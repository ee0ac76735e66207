import MHDServers

/// The streaming routes `scripts/bench.sh` measures (with `--bench-routes`).
enum BenchStreams {
    /// One 64 KiB piece, shared by every stream.
    static let piece = [UInt8](repeating: 0x61, count: 64 * 1024)

    static func register(on router: inout Router) {
        // A chunked response of `bytes` bytes (default 1 MiB), written in 64 KiB pieces.
        router.get("/bench/stream") { request in
            let total = request.query.get("bytes", as: Int.self) ?? (1 << 20)
            guard total >= 0 else { throw HTTPError(.badRequest, message: "bytes must not be negative") }
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"]) { writer in
                var left = total
                while left >= piece.count {
                    try await writer.write(piece)
                    left -= piece.count
                }
                if left > 0 { try await writer.write(Array(piece[0..<left])) }
            }
        }
        // Counts a streamed body of any size (memory stays bounded) and answers with the count.
        router.post("/bench/upload", streamingBodyUpTo: Int.max) { request in
            var bytes = 0
            for try await chunk in request.bodyStream { bytes += chunk.count }
            return .json(raw: #"{"bytes":\#(bytes)}"#)
        }
    }
}
