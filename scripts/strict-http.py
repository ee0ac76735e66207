#!/usr/bin/env python3
"""Every response of the demo app, read by a strict HTTP/1.1 parser that is not ours (h11).

    scripts/strict-http.py APP       # starts APP on ephemeral ports, exits 0 when all is well

A varied set of exchanges (GET, HEAD, POST, OPTIONS; keep-alive and pipelined; HTTP/1.0;
chunked bodies; every error path the layer answers) is sent on raw sockets, and every byte that
comes back is fed to an h11 client connection playing the same requests: a malformed status line,
a wrong Content-Length, a body after a HEAD response, a second header block, or bytes after a
`Connection: close` response all make h11 raise or are caught here, and so is a response with a
body but no Content-Type. Each exchange also states the statuses it must see and whether the
server must close.

Answers libmicrohttpd 0.9.75 makes on its own before the layer sees the request are listed in
ENGINE_DEFECTS with what goes wrong; they are checked too, and the run fails if one of them starts
passing (so the list is kept true).
"""
import re, signal, socket, subprocess, sys, time

import h11

ECHO = b'{"id":1,"name":"n","tags":["a"],"payload":"x"}'


def request(method, target, headers=(), body=b"", version=b"1.1"):
    """A request's bytes and what h11 needs to know of it."""
    lines = [b"%s %s HTTP/%s" % (method, target, version)] + [b"%s: %s" % h for h in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body, method


HOST = (b"Host", b"t")
# name: (requests, expected statuses, the server closes afterwards)
EXCHANGES = {
    "GET": ([request(b"GET", b"/api/hello", [HOST])], [200], False),
    "GET with a query": ([request(b"GET", b"/api/hello?a=1&b=%20", [HOST])], [200], False),
    "HEAD": ([request(b"HEAD", b"/api/hello", [HOST])], [200], False),
    "HEAD then GET on one connection": (
        [request(b"HEAD", b"/api/status", [HOST]), request(b"GET", b"/api/hello", [HOST])], [200, 200], False),
    "OPTIONS (no route): 405 with Allow": ([request(b"OPTIONS", b"/api/hello", [HOST])], [405], False),
    "unknown path: 404 JSON": ([request(b"GET", b"/nope", [HOST])], [404], False),
    "POST with Content-Length": (
        [request(b"POST", b"/bench/echo", [HOST, (b"Content-Length", b"%d" % len(ECHO))], ECHO)], [200], False),
    "POST chunked, with an extension and a trailer": (
        [request(b"POST", b"/bench/echo", [HOST, (b"Transfer-Encoding", b"chunked")],
                 b"5;ext=1\r\n{\"id\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: y\r\n\r\n")], [200], False),
    "POST malformed JSON: 400": (
        [request(b"POST", b"/bench/json", [HOST, (b"Content-Length", b"5")], b"{oops")], [400], False),
    "pipelined: four requests in one write": (
        [request(b"GET", b"/api/hello", [HOST]), request(b"HEAD", b"/api/hello", [HOST]),
         request(b"POST", b"/bench/echo", [HOST, (b"Content-Length", b"2")], b"{}"),
         request(b"GET", b"/nope", [HOST])], [200, 200, 200, 404], False),
    "async handler": ([request(b"GET", b"/bench/async", [HOST])], [200], False),
    "HTTP/1.0 (no Host needed), closes": ([request(b"GET", b"/api/hello", version=b"1.0")], [200], True),
    "HTTP/1.0 keep-alive": (
        [request(b"GET", b"/api/hello", [(b"Connection", b"keep-alive")], version=b"1.0")], [200], False),
    "Connection: close": ([request(b"GET", b"/api/hello", [HOST, (b"Connection", b"close")])], [200], True),
    "absolute-form target": ([request(b"GET", b"http://t/api/hello", [HOST])], [200], False),
    "Expect: 100-continue": (
        [request(b"POST", b"/bench/echo", [HOST, (b"Content-Length", b"2"), (b"Expect", b"100-continue")], b"{}")],
        [100, 200], False),
    # Error paths the layer answers: exactly one response each, then the close.
    "no Host: 400": ([request(b"GET", b"/api/hello")], [400], True),
    "two Host fields: 400": ([request(b"GET", b"/api/hello", [HOST, HOST])], [400], True),
    "space before a colon: 400": ([request(b"GET", b"/api/hello", [HOST, (b"X-A ", b"1")])], [400], True),
    "folded line: 400": ([request(b"GET", b"/api/hello", [HOST, (b"X-A", b"1\r\n 2")])], [400], True),
    "duplicate Content-Length: 400": (
        [request(b"POST", b"/bench/echo", [HOST, (b"Content-Length", b"2"), (b"Content-Length", b"2")], b"{}")],
        [400], True),
    "Content-Length with Transfer-Encoding: 400": (
        [request(b"POST", b"/bench/echo", [HOST, (b"Content-Length", b"2"), (b"Transfer-Encoding", b"chunked")],
                 b"2\r\n{}\r\n0\r\n\r\n")], [400], True),
    "gzip transfer coding: 501": (
        [request(b"POST", b"/bench/echo", [HOST, (b"Transfer-Encoding", b"gzip")], b"x")], [501], True),
    "Transfer-Encoding in HTTP/1.0: 400": (
        [request(b"POST", b"/bench/echo", [(b"Transfer-Encoding", b"chunked")], b"0\r\n\r\n", version=b"1.0")],
        [400], True),
    "body over the limit: 413": (
        [request(b"POST", b"/bench/echo", [HOST, (b"Content-Length", b"99999999")])], [413], True),
    "%00 in the target: 400": ([request(b"GET", b"/api/hello%00", [HOST])], [400], True),
    "chunked body over the limit: 413": (
        [request(b"POST", b"/bench/echo", [HOST, (b"Transfer-Encoding", b"chunked")],
                 b"".join(b"8000\r\n" + b"x" * 0x8000 + b"\r\n" for _ in range(40)) + b"0\r\n\r\n")], [413], True),
}

# What libmicrohttpd 0.9.75 answers by itself, before any callback of the layer: the header block
# sent twice for an invalid Content-Length, an HTML 500 for a long chunk extension, silence for a
# request line without spaces.
ENGINE_DEFECTS = {
    "invalid Content-Length: 400 once": (
        [request(b"POST", b"/bench/echo", [HOST, (b"Content-Length", b"abc")])], [400], True),
    "Content-Length over 64 bits: 413 once": (
        [request(b"POST", b"/bench/echo", [HOST, (b"Content-Length", b"99999999999999999999999")])], [413], True),
    "33 KB chunk extension: a 4xx": (
        [request(b"POST", b"/bench/echo", [HOST, (b"Transfer-Encoding", b"chunked")],
                 b"5;" + b"e" * 33000 + b"\r\nhello\r\n0\r\n\r\n")], [400], True),
    "request line without spaces: 400": ([(b"GARBAGE\r\nHost: t\r\n\r\n", b"GET")], [400], True),
}


def exchange(port, requests, expected, closes):
    """Sends the requests, parses everything that comes back with h11; returns a problem or None."""
    client = h11.Connection(h11.CLIENT)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(b"".join(raw for raw, _ in requests))
        statuses, index, closed = [], 0, False
        # h11 plays the client's side, one request at a time, so that it knows what each
        # response answers (HEAD has no body).
        pending = list(requests)
        _, method = pending.pop(0)
        client.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"t")]))
        client.send(h11.EndOfMessage())
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    data = b""
                client.receive_data(data)
                if not data:
                    closed = True
                continue
            if isinstance(event, h11.InformationalResponse):
                statuses.append(event.status_code)
            elif isinstance(event, h11.Response):
                statuses.append(event.status_code)
                names = {name.lower() for name, _ in event.headers}
                length = dict(event.headers).get(b"content-length", b"0")
                if length != b"0" and b"content-type" not in names:
                    return f"a {event.status_code} with a body but no Content-Type"
            elif isinstance(event, h11.EndOfMessage):
                index += 1
                if pending and client.our_state is h11.DONE and client.their_state is h11.DONE:
                    client.start_next_cycle()
                    _, method = pending.pop(0)
                    client.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"t")]))
                    client.send(h11.EndOfMessage())
                elif not pending and not closes:
                    break
            elif isinstance(event, h11.ConnectionClosed):
                closed = True
                break
            if client.their_state is h11.MUST_CLOSE and not pending:
                # Whatever else arrives must be nothing: read until the close.
                rest = client.trailing_data[0]
                try:
                    while chunk := sock.recv(65536):
                        rest += chunk
                except (socket.timeout, ConnectionResetError):
                    pass
                if rest:
                    return f"{len(rest)} bytes after a response that closes: {rest[:60]!r}"
                closed = True
                break
        if statuses != expected:
            return f"statuses {statuses}, expected {expected}"
        if closes and not closed:
            return "the connection stayed open"
        return None
    except h11.RemoteProtocolError as error:
        return f"h11 rejected the response: {error}"
    finally:
        sock.close()


def main():
    app = sys.argv[1]
    log = open("/dev/null", "w")
    proc = subprocess.Popen([app, "--public-port", "0", "--admin-port", "0", "--bench-routes"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    port, start = None, time.monotonic()
    while port is None and time.monotonic() - start < 20:
        line = proc.stdout.readline()
        match = re.search(r"public listening on http://127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
    failures = 0
    try:
        if port is None:
            print("strict-http: the app did not start")
            return 2
        for name, (requests, expected, closes) in EXCHANGES.items():
            problem = exchange(port, requests, expected, closes)
            print(f"  {'ok  ' if problem is None else 'FAIL'}  {name}" + (f": {problem}" if problem else ""))
            failures += problem is not None
        for name, (requests, expected, closes) in ENGINE_DEFECTS.items():
            problem = exchange(port, requests, expected, closes)
            if problem is None:
                print(f"  FAIL  {name}: passes now; move it from ENGINE_DEFECTS to EXCHANGES")
                failures += 1
            else:
                print(f"  known {name}: {problem}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    total = len(EXCHANGES) + len(ENGINE_DEFECTS)
    print(f"strict-http: {total - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
