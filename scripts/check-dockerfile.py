#!/usr/bin/env python3
"""Checks deploy/Dockerfile without a container engine.

The build stage is reproduced in a fresh folder: its COPY instructions copy exactly their
sources from the repository (as the build context, .dockerignore applied), in order, mirrored
under the stage's WORKDIR, and its `swift ...` RUN instructions run there. Its apt-get lines are
skipped: the packages they install (libmicrohttpd-dev, pkg-config) must be on this machine. The
runtime stage is judged: a non-root USER, an exec-form ENTRYPOINT that keeps the admin API on
loopback unless a token protects it, and a binary whose shared libraries are all provided by the
runtime image (its base image's packages and the ones its RUN apt-get installs; this machine must
run the same Debian release as that base image). The built binary then has to answer --help,
start on loopback ports, answer /healthz and /readyz on the public port, and exit 0 on SIGTERM.

    scripts/check-dockerfile.sh [--no-build] [DOCKERFILE]

Prints `ok - ...` / `not ok - ...` lines; exits 1 on any failure. KEEP_WORK=1 keeps the folder.
"""

import glob
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_TIMEOUT = 1800  # seconds for each build RUN (a clean release build takes minutes)
READY_TIMEOUT = 30  # seconds for the app to log that it is ready
STOP_TIMEOUT = 10  # seconds for the app to exit after SIGTERM
APP_DEFAULT_ADMIN_HOST = "127.0.0.1"  # App.swift: --admin-host defaults to loopback
SWIFT_RUNTIME_LIBRARIES = re.compile(r"^(libswift|libFoundation|lib_Foundation|libdispatch|libBlocksRuntime)")

failures = []


def ok(message):
    print(f"ok - {message}", flush=True)


def not_ok(message, detail=None):
    failures.append(message)
    print(f"not ok - {message}", flush=True)
    if detail:
        for line in str(detail).rstrip().splitlines():
            print(f"#   {shorten(line)}", flush=True)


def shorten(line, limit=300):
    return line if len(line) <= limit else line[:limit] + f" ... ({len(line) - limit} more characters)"


def note(message):
    print(f"# {message}", flush=True)


def line_queue(stream):
    """A queue of the stream's lines, read by a thread; None once the stream ends."""
    lines = queue.Queue()

    def read():
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


# --- Dockerfile parsing ------------------------------------------------------------------------


class Instruction:
    def __init__(self, line, keyword, args):
        self.line, self.keyword, self.args = line, keyword, args

    def __repr__(self):
        return f"line {self.line}: {self.keyword} {self.args}"


class Stage:
    def __init__(self, index, image, name):
        self.index, self.image, self.name = index, image, name
        self.instructions = []

    @property
    def label(self):
        return self.name or str(self.index)


def parse_dockerfile(path):
    """Stages with their instructions; continuation lines joined, comments dropped."""
    stages = []
    pending, start = "", 0
    with open(path) as file:
        lines = file.read().splitlines()
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # a comment, also inside a continued instruction, as Docker reads it
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = (pending + stripped).strip()
        pending = ""
        if not text:
            continue
        keyword, _, args = text.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(len(stages), words[0], name))
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"line {number}: {keyword} before FROM")
        else:
            stages[-1].instructions.append(Instruction(start, keyword, args))
    if pending:
        raise ValueError("the last instruction ends with a line continuation")
    return stages


def exec_form(args):
    """The JSON array of an exec-form instruction, or None for the shell form."""
    if args.startswith("["):
        try:
            value = json.loads(args)
        except json.JSONDecodeError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return None


def copy_arguments(args):
    """(flags, sources, destination) of a COPY instruction."""
    value = exec_form(args)
    words = value if value is not None else args.split()
    flags = {}
    while words and words[0].startswith("--"):
        flag, _, flag_value = words.pop(0)[2:].partition("=")
        flags[flag] = flag_value
    if len(words) < 2:
        raise ValueError(f"COPY needs a source and a destination: {args}")
    return flags, words[:-1], words[-1]


def env_assignments(args):
    """ENV KEY=VALUE ... or ENV KEY VALUE."""
    if "=" not in args.split(" ", 1)[0]:
        key, _, value = args.partition(" ")
        return {key: value.strip()}
    return dict(word.split("=", 1) for word in shlex.split(args))


# --- .dockerignore -----------------------------------------------------------------------------


def ignore_pattern(pattern):
    """A compiled .dockerignore pattern (Go filepath.Match syntax plus **), as Docker reads it."""
    pattern = os.path.normpath(pattern).lstrip("/")
    regex, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            else:
                regex += ".*"
                i += 2
            continue
        if c == "*":
            regex += "[^/]*"
        elif c == "?":
            regex += "[^/]"
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            regex += re.escape(pattern[i])
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                regex += re.escape(c)
            else:
                body = pattern[i + 1:end]
                regex += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        else:
            regex += re.escape(c)
        i += 1
    return re.compile(regex)


def read_dockerignore():
    rules = []
    path = os.path.join(ROOT, ".dockerignore")
    if os.path.exists(path):
        for line in open(path).read().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            rules.append((negate, ignore_pattern(line[1:].strip() if negate else line)))
    return rules


def excluded(rules, relpath):
    """Whether the build context leaves relpath out (the last matching rule decides)."""
    parts = relpath.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negate, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not negate
    return result


# --- reproducing the build stage ---------------------------------------------------------------


def context_sources(source):
    """The context paths (relative) a COPY source names; wildcards expanded."""
    normalized = os.path.normpath(source).lstrip("/")
    if normalized == ".." or normalized.startswith("../"):
        raise ValueError(f"COPY source '{source}' is outside the build context")
    if normalized == ".":
        return ["."]
    if any(c in normalized for c in "*?["):
        return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, normalized)))
    return [normalized] if os.path.lexists(os.path.join(ROOT, normalized)) else []


def copy_into(rules, relpath, target):
    """Copies one context path to target (a directory's contents into target), skipping what
    .dockerignore leaves out. Returns the number of files copied."""
    source = os.path.join(ROOT, relpath)
    if not os.path.isdir(source) or os.path.islink(source):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
        return 1
    count = 0
    for directory, subdirs, files in os.walk(source):
        rel_dir = os.path.relpath(directory, ROOT)
        os.makedirs(os.path.join(target, os.path.relpath(directory, source)), exist_ok=True)
        subdirs[:] = sorted(d for d in subdirs
                            if not excluded(rules, os.path.normpath(os.path.join(rel_dir, d))) or
                            any(negate for negate, _ in rules))  # a later ! may re-include
        for name in sorted(files):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if excluded(rules, rel):
                continue
            shutil.copy2(os.path.join(directory, name),
                         os.path.join(target, os.path.relpath(directory, source), name),
                         follow_symlinks=False)
            count += 1
    return count


def tracked_files(relpath):
    """Files git tracks under relpath, or None outside a git checkout."""
    result = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--", relpath],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return [p for p in result.stdout.split("\0") if p]


def absolute_paths(command):
    """Absolute paths written literally in a shell command."""
    return re.findall(r"(?:^|[\s\"'=:])(/[^\s\"';&|)]*)", command)


def run_build_command(command, cwd, env):
    """Runs one RUN command (as /bin/sh -c, like Docker) in its own process group, with the
    compiler's progress lines left out. Returns the exit status, or None on time-out."""
    process = subprocess.Popen(["/bin/sh", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + BUILD_TIMEOUT
    progress = re.compile(r"^\[\d+/\d+\] (Compiling|Write|Emitting|Linking|Applying|Copying)")
    lines = line_queue(process.stdout)
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            os.killpg(process.pid, signal.SIGKILL)  # the group this check started
            process.wait()
            return None
        if line is None:
            break
        if not progress.match(line):
            print(f"#   {shorten(line)}", flush=True)
    return process.wait()


def reproduce_stage(stage, work, rules, tracked_checks, build):
    """Reproduces a build stage under work/<stage> (standing for its /): its copies, and its swift
    commands when build is true. Returns the stage root, or None when it could not be reproduced."""
    root = os.path.join(work, f"stage-{stage.label}")
    os.makedirs(root)
    workdir = "/"
    env = dict(os.environ)
    reproduced = True
    note(f"build stage '{stage.label}' ({stage.image}), reproduced in a fresh folder")
    for instruction in stage.instructions:
        keyword, args = instruction.keyword, instruction.args
        if keyword == "WORKDIR":
            workdir = os.path.normpath(os.path.join(workdir, args))
            os.makedirs(root + workdir, exist_ok=True)
        elif keyword == "ENV":
            env.update(env_assignments(args))
        elif keyword in ("COPY", "ADD"):
            if keyword == "ADD":
                not_ok(f"line {instruction.line}: ADD is not reproduced by this check (use COPY)")
                reproduced = False
                continue
            flags, sources, destination = copy_arguments(args)
            if "from" in flags:
                not_ok(f"line {instruction.line}: COPY --from in a build stage is not reproduced")
                reproduced = False
                continue
            if "$" in args:
                not_ok(f"line {instruction.line}: variables in COPY are not reproduced: {args}")
                reproduced = False
                continue
            target = os.path.normpath(os.path.join(workdir, destination))
            into_directory = destination.endswith("/") or len(sources) > 1 or destination in (".", "./")
            for source in sources:
                matches = context_sources(source)
                if not matches:
                    not_ok(f"line {instruction.line}: COPY source '{source}' does not exist in the "
                           f"build context", "docker build would fail here: 'not found'")
                    reproduced = False
                    continue
                for relpath in matches:
                    if relpath != "." and excluded(rules, relpath):
                        not_ok(f"line {instruction.line}: COPY source '{relpath}' is left out by "
                               f".dockerignore")
                        reproduced = False
                        continue
                    tracked = tracked_files(relpath)
                    if tracked is not None:
                        left_out = [p for p in tracked if excluded(rules, p)]
                        tracked_checks.append((relpath, left_out))
                    is_dir = os.path.isdir(os.path.join(ROOT, relpath))
                    destination_path = target
                    if not is_dir and (into_directory or os.path.isdir(root + target)):
                        destination_path = os.path.join(target, os.path.basename(relpath))
                    count = copy_into(rules, relpath, root + destination_path)
                    note(f"COPY {relpath} -> {destination_path} ({count} file{'s' if count != 1 else ''})")
        elif keyword == "RUN":
            value = exec_form(args)
            command = " ".join(value) if value is not None else args
            command = re.sub(r"^--\S+\s+", "", command)  # RUN --mount=... flags
            first = command.split()[0] if command.split() else ""
            if first == "apt-get" or first == "apt":
                note(f"skipped RUN {command[:60]}... (its packages must be installed here, as in CI)")
                continue
            if first != "swift":
                not_ok(f"line {instruction.line}: RUN '{command[:60]}' is not a swift command; "
                       f"this check only reproduces swift builds")
                reproduced = False
                continue
            outside = [p for p in absolute_paths(command) if p != workdir and not p.startswith(workdir + "/")]
            if outside:
                not_ok(f"line {instruction.line}: RUN writes or reads outside WORKDIR ({', '.join(outside)});"
                       f" it cannot be reproduced outside a container")
                reproduced = False
                continue
            if not reproduced or not build:
                note(f"skipped RUN {command[:60]}... ({'an earlier step failed' if build else '--no-build'})")
                continue
            mapped = re.sub(r"(?<![\w./])" + re.escape(workdir) + r"(?=/|\b)", root + workdir, command) \
                if workdir != "/" else command
            note(f"RUN {command}")
            started = time.monotonic()
            status = run_build_command(mapped, root + workdir, env)
            elapsed = time.monotonic() - started
            if status is None:
                not_ok(f"line {instruction.line}: RUN did not finish within {BUILD_TIMEOUT} s")
                reproduced = False
            elif status != 0:
                not_ok(f"line {instruction.line}: RUN {command[:70]} exits {status} (its output is above)")
                reproduced = False
            else:
                ok(f"line {instruction.line}: RUN {command[:70]} ({elapsed:.0f} s)")
        elif keyword in ("USER", "LABEL", "ARG", "SHELL", "EXPOSE", "STOPSIGNAL", "CMD", "ENTRYPOINT"):
            pass  # no effect on the files the build produces
        else:
            note(f"line {instruction.line}: {keyword} ignored in the build stage")
    return root if reproduced else None


# --- the runtime stage -------------------------------------------------------------------------


def installed_packages():
    """Installed Debian packages: name -> (priority, essential, provides, dependencies)."""
    fields = "${Package}\t${db:Status-Abbrev}\t${Priority}\t${Essential}\t${Provides}\t${Pre-Depends}, ${Depends}\n"
    output = subprocess.run(["dpkg-query", "-W", "-f", fields], capture_output=True, text=True, check=True).stdout
    packages = {}
    for line in output.splitlines():
        name, status, priority, essential, provides, depends = line.split("\t")
        if not status.startswith("ii"):
            continue
        packages[name] = (priority, essential == "yes", provides, depends)
    return packages


def dependency_names(field):
    """Alternatives groups of a Depends field, each a list of bare package names."""
    groups = []
    for group in field.split(","):
        names = [re.sub(r"[\s(:].*", "", alt.strip()) for alt in group.split("|")]
        names = [n for n in names if n]
        if names:
            groups.append(names)
    return groups


def closure(packages, roots):
    """The installed packages roots pull in through Pre-Depends and Depends."""
    providers = {}
    for name, (_, _, provides, _) in packages.items():
        for group in dependency_names(provides):
            for virtual in group:
                providers.setdefault(virtual, set()).add(name)
    seen, queue = set(), [r for r in roots if r in packages]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        for group in dependency_names(packages[name][3]):
            for alternative in group:
                found = [alternative] if alternative in packages else sorted(providers.get(alternative, ()))
                if found:
                    queue.extend(found)
                    break
    return seen


def owning_package(path):
    candidates = [path, os.path.realpath(path)]
    for candidate in list(candidates):
        if candidate.startswith("/usr/lib/"):
            candidates.append(candidate[len("/usr"):])
        elif candidate.startswith("/lib"):
            candidates.append("/usr" + candidate)
    for candidate in candidates:
        result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout.split(":")[0].split(",")[0].strip()
    return None


def apt_packages(stage):
    names = []
    for instruction in stage.instructions:
        if instruction.keyword != "RUN":
            continue
        for segment in re.split(r"&&|;|\|\|", instruction.args):
            words = segment.split()
            if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
                after = words[words.index("install") + 1:]
                names += [w.split("=")[0] for w in after if not w.startswith("-")]
    return names


def host_codename():
    try:
        for line in open("/etc/os-release"):
            key, _, value = line.strip().partition("=")
            if key == "VERSION_CODENAME":
                return value.strip('"')
    except OSError:
        pass
    return None


def check_libraries(binary, runtime):
    result = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if result.returncode != 0:
        not_ok("ldd cannot read the binary", result.stderr)
        return
    libraries = []
    for line in result.stdout.splitlines():
        line = line.strip()
        match = re.match(r"(\S+)\s+=>\s+(not found|\S+)", line) or re.match(r"(/\S+)\s+\(", line)
        if match:
            name = os.path.basename(match.group(1))
            path = match.group(2) if match.re.groups == 2 else match.group(1)
            libraries.append((name, path))
    missing = [name for name, path in libraries if path == "not found"]
    if missing:
        not_ok(f"the binary needs libraries this machine lacks: {', '.join(missing)}")
    swift = [name for name, _ in libraries if SWIFT_RUNTIME_LIBRARIES.match(name)]
    if swift:
        not_ok(f"the binary links the Swift runtime dynamically ({', '.join(swift)}); the runtime image has "
               f"none (build with --static-swift-stdlib)")
    else:
        ok(f"no Swift runtime library is linked dynamically ({len(libraries)} shared libraries: "
           f"{', '.join(name for name, _ in libraries)})")

    image, _, tag = runtime.image.partition(":")
    codename = host_codename()
    if image not in ("debian", "docker.io/library/debian") or not codename or not tag.startswith(codename):
        not_ok(f"the runtime image {runtime.image} is not this machine's Debian release ({codename}); "
               f"its libraries cannot be judged here")
        return
    packages = installed_packages()
    wanted = apt_packages(runtime)
    not_here = [p for p in wanted if p not in packages]
    if not_here:
        not_ok(f"packages the runtime stage installs are not installed here, so their libraries cannot be "
               f"judged: {', '.join(not_here)}")
    base = [name for name, (priority, essential, _, _) in packages.items() if priority == "required" or essential]
    provided = closure(packages, base + ["apt"]) | closure(packages, wanted)
    unprovided = []
    for name, path in libraries:
        if path == "not found":
            continue
        package = owning_package(path)
        if package not in provided:
            unprovided.append(f"{name} ({package or 'no Debian package'})")
    if unprovided:
        not_ok(f"libraries the runtime image ({runtime.image} + apt-get install {' '.join(wanted)}) does not "
               f"provide: {', '.join(unprovided)}")
    else:
        ok(f"every shared library comes from {runtime.image} or the packages its RUN installs "
           f"({' '.join(wanted)}) and their dependencies")


def is_loopback(host):
    host = host.strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def option_value(arguments, name):
    """The value the app sees for --name: the last occurrence wins."""
    value = None
    for i, argument in enumerate(arguments):
        if argument == name and i + 1 < len(arguments):
            value = arguments[i + 1]
        elif argument.startswith(name + "="):
            value = argument[len(name) + 1:]
    return value


def without_options(arguments, names):
    result, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument in names:
            skip = True
        elif not any(argument.startswith(n + "=") for n in names):
            result.append(argument)
    return result


def check_runtime_configuration(runtime):
    """Static checks of the runtime stage. Returns (entrypoint argv or None, env)."""
    user, entrypoint, cmd, env, stopsignal = None, None, [], {}, None
    for instruction in runtime.instructions:
        if instruction.keyword == "USER":
            user = instruction.args
        elif instruction.keyword == "ENV":
            env.update(env_assignments(instruction.args))
        elif instruction.keyword == "STOPSIGNAL":
            stopsignal = instruction.args
        elif instruction.keyword in ("ENTRYPOINT", "CMD"):
            value = exec_form(instruction.args)
            if value is None:
                not_ok(f"line {instruction.line}: {instruction.keyword} is in shell form: the app would not "
                       f"be PID 1 and would not receive SIGTERM (use a JSON array)")
                value = []
            if instruction.keyword == "ENTRYPOINT":
                entrypoint = value
            else:
                cmd = value

    if user is None:
        not_ok("the runtime stage sets no USER: the app would run as root")
    else:
        uid, _, gid = user.partition(":")
        if uid == "root" or gid == "root":
            not_ok(f"USER {user}: the app would run as root")
        elif not uid.isdigit():
            not_ok(f"USER {user}: give a numeric non-zero uid (Kubernetes runAsNonRoot can only verify a number)")
        elif int(uid) == 0 or (gid and gid.isdigit() and int(gid) == 0):
            not_ok(f"USER {user}: the app would run as root")
        else:
            ok(f"the app runs as USER {user}, not root")

    if stopsignal in (None, "SIGTERM", "TERM", "15", "SIGINT", "INT", "2"):
        ok(f"STOPSIGNAL {stopsignal or 'SIGTERM (default)'} makes the app drain and exit 0")
    else:
        not_ok(f"STOPSIGNAL {stopsignal}: the app drains on SIGTERM or SIGINT only")

    argv = (entrypoint or []) + cmd
    if not argv:
        not_ok("the runtime stage has no ENTRYPOINT or CMD")
        return None, env
    arguments = argv[1:]
    admin_host = option_value(arguments, "--admin-host") or APP_DEFAULT_ADMIN_HOST
    token = option_value(arguments, "--admin-token") or env.get("APP_ADMIN_TOKEN")
    if is_loopback(admin_host):
        ok(f"the admin API binds {admin_host} (loopback) by default: {json.dumps(argv)}")
    elif token:
        ok(f"the admin API binds {admin_host} and requires a token")
        note("a token written into the image is visible to anyone with the image; prefer passing it at run time")
    else:
        not_ok(f"the admin API binds {admin_host} without a token: metrics and configuration would be open "
               f"to anyone who reaches the port ({json.dumps(argv)})")
    return argv, env


def check_binary(binary, argv):
    help_run = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    if help_run.returncode == 0 and "USAGE" in help_run.stdout:
        ok("the built app answers --help")
    else:
        not_ok(f"the built app --help exits {help_run.returncode}", help_run.stdout + help_run.stderr)

    # The entrypoint's own arguments, on loopback and ephemeral ports only.
    loopback = ["--host", "127.0.0.1", "--admin-host", "127.0.0.1", "--public-port", "0", "--admin-port", "0"]
    arguments = without_options(argv[1:], {"--host", "--admin-host", "--public-port", "--admin-port"}) + loopback
    env = dict(os.environ)
    env.pop("APP_ADMIN_TOKEN", None)
    process = subprocess.Popen([binary] + arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, start_new_session=True)
    try:
        lines = line_queue(process.stdout)
        output, urls, ready = [], {}, False
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None:
                break
            output.append(line)
            match = re.search(r"(\S+) listening on (http\S+)", line)
            if match:
                urls[match.group(1)] = match.group(2).rstrip("/")
            ready = "ready:" in line
        if not ready:
            not_ok(f"the app did not log 'ready' within {READY_TIMEOUT} s", "\n".join(output[-15:]))
            return
        ok(f"the app starts with its entrypoint's options on loopback ({', '.join(f'{k} {v}' for k, v in urls.items())})")
        public = urls.get("public")
        for path in ("/healthz", "/readyz"):
            try:
                with urllib.request.urlopen(public + path, timeout=5) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except (urllib.error.URLError, TypeError, OSError) as error:
                status = error
            if status == 200:
                ok(f"the public port answers {path} 200 (probes need not reach the admin API)")
            else:
                not_ok(f"the public port answers {path} with {status}")
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            not_ok(f"the app did not exit within {STOP_TIMEOUT} s of SIGTERM")
            return
        rest = []
        while (line := lines.get(timeout=5)) is not None:
            rest.append(line)
        if status == 0:
            ok("SIGTERM: the app drains and exits 0")
        else:
            not_ok(f"SIGTERM: the app exits {status}", "\n".join((output + rest)[-15:]))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def reproduce(copies, argv, runtime, rules, build, work):
    """Reproduces the build stages the runtime stage copies from, then checks what it copies."""
    roots, tracked_checks = {}, []
    for stage in dict.fromkeys(stage for stage, _, _ in copies):
        roots[stage.label] = reproduce_stage(stage, work, rules, tracked_checks, build)
    for relpath, left_out in tracked_checks:
        if left_out:
            not_ok(f".dockerignore leaves out files of '{relpath}' the repository tracks: "
                   f"{', '.join(left_out[:5])}")
        else:
            ok(f".dockerignore keeps every tracked file of '{relpath}'")
    if not build:
        note("--no-build: the swift commands did not run, so the binary is not checked")
        return
    binary = None
    for stage, source, destination in copies:
        root = roots.get(stage.label)
        if root is None:
            continue
        path = root + os.path.normpath(source)
        if not os.path.exists(path):
            not_ok(f"COPY --from={stage.label} {source}: the build stage did not produce it")
            continue
        ok(f"COPY --from={stage.label} {source} {destination}: produced by the build stage")
        target = destination if not destination.endswith("/") else destination + os.path.basename(source)
        if argv and argv[0] == target:
            binary = path
    if not argv or not roots or not all(roots.values()):
        return
    if binary is None:
        not_ok(f"the entrypoint {argv[0]} is not a file the runtime stage copies from a build stage")
        return
    check_libraries(binary, runtime)
    check_binary(binary, argv)


def main():
    arguments = sys.argv[1:]
    build = "--no-build" not in arguments
    arguments = [a for a in arguments if a != "--no-build"]
    dockerfile = os.path.abspath(arguments[0]) if arguments else os.path.join(ROOT, "deploy", "Dockerfile")
    shown = os.path.relpath(dockerfile, ROOT) if dockerfile.startswith(ROOT + os.sep) else dockerfile
    started = time.monotonic()
    try:
        stages = parse_dockerfile(dockerfile)
    except (OSError, ValueError) as error:
        not_ok(f"cannot read {shown}: {error}")
        return 1
    if len(stages) < 2:
        not_ok("the Dockerfile has no separate build and runtime stages")
        return 1
    ok(f"{shown}: {len(stages)} stages "
       f"({', '.join(f'{s.label} on {s.image}' for s in stages)})")
    runtime = stages[-1]
    by_label = {s.label: s for s in stages[:-1]}
    by_label.update({str(s.index): s for s in stages[:-1]})

    argv, _ = check_runtime_configuration(runtime)

    # What the runtime stage takes from the build stages.
    copies = []  # (stage, source path in that stage, destination in the runtime image)
    for instruction in runtime.instructions:
        if instruction.keyword == "COPY":
            flags, sources, destination = copy_arguments(instruction.args)
            if "from" not in flags:
                not_ok(f"line {instruction.line}: the runtime stage copies from the context; this check "
                       f"only follows COPY --from")
                continue
            stage = by_label.get(flags["from"])
            if stage is None:
                not_ok(f"line {instruction.line}: COPY --from={flags['from']} names no stage of this Dockerfile")
                continue
            for source in sources:
                copies.append((stage, source, destination))
    if not copies:
        not_ok("the runtime stage copies nothing from a build stage")

    rules = read_dockerignore()
    uses_resolved = any(
        i.keyword == "COPY" and "Package.resolved" in i.args for s in stages[:-1] for i in s.instructions)
    if uses_resolved and not os.path.exists(os.path.join(ROOT, "Package.resolved")):
        note("no Package.resolved: running `swift package resolve` first, as a user does before docker build")
        result = subprocess.run(["swift", "package", "resolve"], cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            not_ok("swift package resolve fails", result.stdout + result.stderr)
            return 1

    work = tempfile.mkdtemp(prefix="check-dockerfile.")
    try:
        reproduce(copies, argv, runtime, rules, build, work)
    finally:
        if os.environ.get("KEEP_WORK"):
            note(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - started
    if failures:
        print(f"# {len(failures)} failed ({elapsed:.0f} s)")
        return 1
    print(f"# all passed ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
