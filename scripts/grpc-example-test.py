#!/usr/bin/env python3
"""End-to-end test of Examples/http-grpc with real clients: grpcio (and its health-checking
stubs) for gRPC, curl for HTTP, real signals for the shutdown.

Usage: grpc-example-test.py BINARY DESCRIPTOR_SET

Every check prints "ok - ..." or "not ok - ..."; the exit status is the number of failures.
"""
import errno
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

BINARY, DESCRIPTORS = sys.argv[1], sys.argv[2]
HOST = "127.0.0.1"
failures = 0


def check(condition, what):
    global failures
    print(("ok - " if condition else "not ok - ") + what, flush=True)
    if not condition:
        failures += 1
    return condition


# The example's own messages, from the .proto it was generated from (no generated Python code).
with open(DESCRIPTORS, "rb") as f:
    files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
pool = descriptor_pool.DescriptorPool()
for proto in files.file:
    pool.Add(proto)
Message = {name: message_factory.GetMessageClass(pool.FindMessageTypeByName("greeter.v1." + name))
           for name in ("HelloRequest", "HelloReply", "WaitRequest", "WaitReply")}


def greeter(channel, method, request, response):
    return channel.unary_unary(
        "/greeter.v1.Greeter/" + method,
        request_serializer=Message[request].SerializeToString,
        response_deserializer=Message[response].FromString)


def say_hello(channel, name, timeout=5):
    return greeter(channel, "SayHello", "HelloRequest", "HelloReply")(
        Message["HelloRequest"](name=name), timeout=timeout).message


def wait_call(channel, milliseconds):
    """Starts a Wait call; returns a future."""
    return greeter(channel, "Wait", "WaitRequest", "WaitReply").future(
        Message["WaitRequest"](milliseconds=milliseconds), timeout=120)


def health_status(channel, service=""):
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def http(port, path, timeout=5):
    """(status, body) of GET path with curl; (None, reason) when there is no answer."""
    result = subprocess.run(
        ["curl", "-s", "--max-time", str(timeout), "-w", "\n%{http_code}", f"http://{HOST}:{port}{path}"],
        capture_output=True, text=True)
    body, _, status = result.stdout.rpartition("\n")
    if result.returncode != 0 or status == "000":
        return None, f"curl exit {result.returncode}"
    return int(status), body


def http_in_background(port, path, timeout=60):
    """Starts curl for GET path; returns the process (its output: body, then the status)."""
    return subprocess.Popen(
        ["curl", "-s", "--max-time", str(timeout), "-w", "\n%{http_code}", f"http://{HOST}:{port}{path}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def wait_in_flight(http_port, grpc_port, budget=5):
    """Until the HTTP request in flight has reached the handler: the process's /proc shows an
    established connection to the HTTP port besides ours (bounded)."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as f:
            rows = f.read().splitlines()[1:]
        local = f":{http_port:04X}"
        established = [r for r in rows if r.split()[1].endswith(local) and r.split()[3] == "01"]
        if established:
            return True
        time.sleep(0.02)
    return False


def refused_while_alive(example, port):
    """The port refuses connections (ECONNREFUSED) while the process still runs."""
    with socket.socket() as s:
        s.settimeout(2)
        code = s.connect_ex((HOST, port))
    return example.process.poll() is None and code == errno.ECONNREFUSED


def refused(port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((HOST, port)) != 0


def free_run(count):
    """`count` consecutive ports below the ephemeral range, free right now."""
    for _ in range(500):
        base = random.randrange(12_000, 30_000)
        holders = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind((HOST, port))
                holders.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in holders:
                s.close()
    raise RuntimeError("no run of free ports")


def hold(port):
    s = socket.socket()
    s.bind((HOST, port))
    s.listen(8)
    return s


class Watch:
    """A grpc.health.v1 Watch in a thread: every status with the time it arrived, and the end."""

    def __init__(self, channel, service=""):
        self.statuses, self.ended, self.error = [], None, None
        self.first = threading.Event()
        self.not_serving = threading.Event()
        self.call = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=service), timeout=120)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for response in self.call:
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                self.statuses.append((time.monotonic(), status))
                self.first.set()
                if status == "NOT_SERVING":
                    self.not_serving.set()
        except grpc.RpcError as error:
            self.error = error.code()
        self.ended = time.monotonic()
        self.first.set()


class Example:
    """The example process, with its output in files."""

    def __init__(self, *args):
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        self.process = subprocess.Popen([BINARY, "--host", HOST, *args], stdout=self.out, stderr=self.err)

    def exit_code(self, timeout):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stdout(self):
        self.out.seek(0)
        return self.out.read()

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_ready(example, http_port, grpc_port, budget=60):
    """Polls /readyz until 200. Readiness includes gRPC: every 200 must find gRPC serving."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline and example.process.poll() is None:
        status, _ = http(http_port, "/readyz")
        if status == 200:
            with grpc.insecure_channel(f"{HOST}:{grpc_port}") as channel:
                try:
                    serving = health_status(channel)
                except grpc.RpcError as error:
                    serving = str(error.code())
            check(serving == "SERVING", f"when /readyz first says 200, gRPC health already says SERVING ({serving})")
            return True
        time.sleep(0.05)
    return False


def serve_and_drain():
    """Port fallback for both, both protocols served, then a SIGTERM with calls in flight."""
    http_base, grpc_base = free_run(10), free_run(10)
    holders = [hold(http_base), hold(grpc_base)]  # the preferred ports are busy
    http_port, grpc_port = http_base + 1, grpc_base + 1
    drain_delay, timeout = 2.0, 3.0
    example = Example("--http-port", str(http_base), "--grpc-port", str(grpc_base),
                      "--drain-delay", str(drain_delay), "--shutdown-timeout", str(timeout))
    try:
        if not check(wait_ready(example, http_port, grpc_port), "started: HTTP and gRPC each on the port after the busy one"):
            print(example.stderr())
            return
        status, body = http(http_port, "/api/status")
        state = json.loads(body) if status == 200 else {}
        check(state.get("grpc") == f"{HOST}:{grpc_port}", f"/api/status names the gRPC address ({state.get('grpc')})")
        check(state.get("grpcHealth") == "serving", f"/api/status shows gRPC health ({state.get('grpcHealth')})")

        channel = grpc.insecure_channel(f"{HOST}:{grpc_port}")
        check(health_status(channel) == "SERVING", "Health/Check(\"\") is SERVING")
        check(health_status(channel, "greeter.v1.Greeter") == "SERVING", "Health/Check(greeter.v1.Greeter) is SERVING")
        try:
            health_status(channel, "no.such.Service")
            check(False, "Health/Check of an unknown service fails")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.NOT_FOUND, f"Health/Check of an unknown service is NOT_FOUND ({error.code()})")
        check(say_hello(channel, "grpc") == "Hello, grpc!", "Greeter/SayHello answers")
        status, body = http(http_port, "/api/hello?name=grpc")
        check(status == 200 and json.loads(body).get("message") == "Hello, grpc!", "GET /api/hello gives the same greeting")

        watch = Watch(channel)
        unknown = Watch(channel, "no.such.Service")
        check(watch.first.wait(10) and watch.statuses[:1] and watch.statuses[0][1] == "SERVING", "Health/Watch starts with SERVING")
        check(unknown.first.wait(10) and unknown.statuses[:1] and unknown.statuses[0][1] == "SERVICE_UNKNOWN",
              "Health/Watch of an unknown service says SERVICE_UNKNOWN and stays open")
        finishes = wait_call(channel, 3500)     # ends during the drain: must succeed
        outlives = wait_call(channel, 60_000)   # outlives the deadline: must be cancelled
        say_hello(channel, "barrier")           # same connection: both calls reached the server first
        slow_http = http_in_background(http_port, "/api/wait?ms=3500")  # an HTTP request in flight too
        check(wait_in_flight(http_port, grpc_port), "the HTTP request is in flight")

        start = time.monotonic()
        example.process.send_signal(signal.SIGTERM)
        check(watch.not_serving.wait(drain_delay * 0.75), "SIGTERM: Health/Watch says NOT_SERVING at once (within the drain delay)")
        status, _ = http(http_port, "/readyz")
        check(status == 503, f"SIGTERM: /readyz answers 503 during the drain delay ({status})")
        check(health_status(channel) == "NOT_SERVING", "SIGTERM: Health/Check says NOT_SERVING during the drain delay")
        check(say_hello(channel, "late") == "Hello, late!", "during the drain delay new gRPC calls are still served")
        status, _ = http(http_port, "/api/hello")
        check(status == 200, "during the drain delay new HTTP requests are still served")

        watch.thread.join(drain_delay + timeout + 5)
        check(watch.ended is not None and watch.ended - start >= drain_delay * 0.9,
              f"Health/Watch ends when the server stops accepting, not before ({(watch.ended or 0) - start:.2f} s)")
        check(refused_while_alive(example, http_port),
              "after the drain delay new HTTP connections are refused (ECONNREFUSED) while calls finish")
        with grpc.insecure_channel(f"{HOST}:{grpc_port}") as late:
            try:
                say_hello(late, "too late", timeout=3)
                check(False, "after the drain delay new gRPC calls are refused")
            except grpc.RpcError as error:
                check(error.code() == grpc.StatusCode.UNAVAILABLE, f"after the drain delay new gRPC calls are refused ({error.code()})")
        try:
            waited = finishes.result(timeout=30).waited_milliseconds
            check(waited >= 3400, f"a call in flight finishes during the drain ({waited} ms)")
        except grpc.RpcError as error:
            check(False, f"a call in flight finishes during the drain ({error.code()})")
        try:
            outlives.result(timeout=30)
            check(False, "a call longer than the deadline is cancelled")
        except grpc.RpcError as error:
            ended = time.monotonic() - start
            check(drain_delay + timeout - 0.3 <= ended < drain_delay + timeout + 2.5,
                  f"a call longer than the deadline ends at the deadline ({error.code()} after {ended:.2f} s)")
        out, _ = slow_http.communicate(timeout=30)
        body, _, status = out.rpartition("\n")
        check(status == "200" and '"waitedMilliseconds":3500' in body,
              f"the HTTP request in flight finishes during the drain ({status})")
        code = example.exit_code(drain_delay + timeout + 10)
        elapsed = time.monotonic() - start
        check(code == 0, f"exit status 0 after SIGTERM ({code})")
        check(elapsed < drain_delay + timeout + 1, f"the process exits within deadline + 1 s ({elapsed:.2f} s, deadline {drain_delay + timeout:g} s)")
        check(refused(http_port) and refused(grpc_port), "after exit nothing listens on either port")
        channel.close()
    finally:
        example.stop()
        for s in holders:
            s.close()


def second_signal():
    """A second signal cancels the side service at once, whatever its deadline."""
    http_port, grpc_port = free_run(10), free_run(10)
    example = Example("--http-port", str(http_port), "--grpc-port", str(grpc_port), "--shutdown-timeout", "30")
    try:
        if not check(wait_ready(example, http_port, grpc_port), "started (second-signal case)"):
            print(example.stderr())
            return
        channel = grpc.insecure_channel(f"{HOST}:{grpc_port}")
        watch = Watch(channel)
        call = wait_call(channel, 60_000)
        say_hello(channel, "barrier")
        example.process.send_signal(signal.SIGTERM)
        check(watch.not_serving.wait(5), "first SIGTERM: NOT_SERVING")
        time.sleep(0.3)
        check(example.process.poll() is None, "a 60 s call holds the drain (deadline 30 s)")
        start = time.monotonic()
        example.process.send_signal(signal.SIGINT)
        code = example.exit_code(10)
        elapsed = time.monotonic() - start
        check(code == 0 and elapsed < 3, f"second signal (SIGINT): exits at once ({code} after {elapsed:.2f} s)")
        try:
            call.result(timeout=10)
            check(False, "the call in flight is ended by the second signal")
        except grpc.RpcError as error:
            check(True, f"the call in flight is ended by the second signal ({error.code()})")
        channel.close()
    finally:
        example.stop()


def no_grpc_port():
    """Every gRPC port busy: a clear error, a non-zero exit, nothing left bound."""
    http_port, grpc_base = free_run(10), free_run(10)
    holders = [hold(port) for port in range(grpc_base, grpc_base + 10)]
    example = Example("--http-port", str(http_port), "--grpc-port", str(grpc_base))
    try:
        code = example.exit_code(60)
        err = example.stderr()
        tried = ", ".join(str(p) for p in range(grpc_base, grpc_base + 10))
        check(code == 2, f"every gRPC port busy: exit status 2 ({code})")
        check(f"server 'grpc' on {HOST}" in err and f"tried {tried}" in err,
              "the error names the server, the host and every port tried: " + err.strip().splitlines()[-1:][0] if err.strip() else "(no stderr)")
        check(refused(http_port), "the HTTP server did not stay bound")
    finally:
        example.stop()
        for s in holders:
            s.close()


def signal_during_start_up(rounds=12):
    """SIGTERM at a random instant after the manager trapped its signals (its "starting" line),
    before or after the gRPC server listens: exit 0 every time, nothing left bound."""
    rng = random.Random(51)
    before_ready, outcomes = 0, []
    for _ in range(rounds):
        http_port, grpc_port = free_run(10), free_run(10)
        example = Example("--http-port", str(http_port), "--grpc-port", str(grpc_port))
        try:
            deadline = time.monotonic() + 30
            while b"starting " not in example.stdout() and time.monotonic() < deadline and example.process.poll() is None:
                time.sleep(0.001)
            # Half the rounds within a few milliseconds of the trap (before the gRPC server listens).
            time.sleep(rng.random() * (0.003 if len(outcomes) % 2 == 0 else 0.05))
            if b"ready: " not in example.stdout():
                before_ready += 1
            example.process.send_signal(signal.SIGTERM)
            code = example.exit_code(20)
            outcomes.append(code)
            if not check(code == 0 and refused(http_port) and refused(grpc_port),
                         f"SIGTERM during start-up: exit 0, nothing bound ({code})"):
                print(example.stderr())
        finally:
            example.stop()
    print(f"# {rounds} start-ups signalled, {before_ready} before their ready line", flush=True)


def upgrade_with_grpc():
    """SIGUSR2 with HTTP and gRPC under load: a new process of the example takes both listening
    sockets over (the gRPC one passed by its listener's name), the old one exits 0, and no HTTP
    request or gRPC call fails (gRPC calls wait for a ready channel and retry UNAVAILABLE, as
    clients of a restarting server are configured to)."""
    http_port, grpc_port = free_run(10), free_run(10)
    example = Example("--http-port", str(http_port), "--grpc-port", str(grpc_port))
    new_pid = None
    try:
        if not check(wait_ready(example, http_port, grpc_port), "upgrade: started"):
            print(example.stderr())
            return
        stop = threading.Event()
        results = {"http ok": 0, "http failed": [], "grpc ok": 0, "grpc failed": []}

        def http_load():
            while not stop.is_set():
                status, body = http(http_port, "/api/hello")
                if status == 200:
                    results["http ok"] += 1
                else:
                    results["http failed"].append((status, body))

        # A call the old server refuses while it goes away (HTTP/2 REFUSED_STREAM after its
        # GOAWAY: never processed) ends UNAVAILABLE; gRPC's own retry policy, as production
        # clients configure it, sends it again, to whichever process accepts now.
        retry = json.dumps({"methodConfig": [{
            "name": [{"service": "greeter.v1.Greeter"}],
            "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
                            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})

        def grpc_load():
            with grpc.insecure_channel(f"{HOST}:{grpc_port}", options=[("grpc.service_config", retry)]) as channel:
                call = greeter(channel, "SayHello", "HelloRequest", "HelloReply")
                while not stop.is_set():
                    try:
                        call(Message["HelloRequest"](name="upgrade"), timeout=10, wait_for_ready=True)
                        results["grpc ok"] += 1
                    except grpc.RpcError as error:
                        results["grpc failed"].append(f"{error.code()}: {error.details()}")

        threads = [threading.Thread(target=http_load), threading.Thread(target=grpc_load)]
        for t in threads:
            t.start()
        time.sleep(1)
        example.process.send_signal(signal.SIGUSR2)
        code = example.exit_code(30)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join(30)
        out = example.stdout().decode(errors="replace")
        found = [line for line in out.splitlines() if "upgrade: started" in line]
        new_pid = int(found[0].split("as process ")[1].split()[0]) if found else None
        check(code == 0, f"upgrade: the old process exits 0 once the new one serves ({code})")
        check(new_pid is not None and os.path.exists(f"/proc/{new_pid}"), f"upgrade: a new process ({new_pid}) runs")
        status, body = http(http_port, "/api/status")
        state = json.loads(body) if status == 200 else {}
        check(state.get("grpc") == f"{HOST}:{grpc_port}",
              f"upgrade: the new process serves gRPC on the same port, passed by name ({state.get('grpc')})")
        with grpc.insecure_channel(f"{HOST}:{grpc_port}") as channel:
            check(say_hello(channel, "after") != "" and health_status(channel) == "SERVING",
                  "upgrade: the new process answers gRPC and reports SERVING")
        print(f"# upgrade under load: {results['http ok']} HTTP requests, {results['grpc ok']} gRPC calls", flush=True)
        check(results["http ok"] > 0 and not results["http failed"],
              f"upgrade: no HTTP request failed ({results['http failed'][:3]})")
        check(results["grpc ok"] > 0 and not results["grpc failed"],
              f"upgrade: no gRPC call failed ({results['grpc failed'][:3]})")
    finally:
        example.stop()
        if new_pid:
            os.kill(new_pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and os.path.exists(f"/proc/{new_pid}"):
                with open(f"/proc/{new_pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
                time.sleep(0.05)
            check(refused(http_port) and refused(grpc_port), "upgrade: SIGTERM to the new process frees both ports")


serve_and_drain()
second_signal()
no_grpc_port()
signal_during_start_up()
upgrade_with_grpc()
print(f"{failures} failures", flush=True)
sys.exit(min(failures, 100))
