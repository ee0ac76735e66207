#!/usr/bin/env python3
"""Checks Kubernetes manifests against the Pod Security Standards and this project's deploy rules.

Every pod template in the given files (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
CronJob, ReplicationController) is checked against

  * the Pod Security Standards, "baseline" and "restricted" profiles, every control as listed on
    https://kubernetes.io/docs/concepts/security/pod-security-standards/ (containers,
    initContainers and ephemeralContainers alike);
  * the project's rules for the demo app's Deployment: a qualified, pinned image; the grace period
    derived from the container's --drain-delay and --shutdown-timeout; probes that tolerate a slow
    answer; a read-only root filesystem, resource requests and limits, no service account token,
    the image's user; a required admin token; Prometheus annotations; a PodDisruptionBudget.

Prints one line per rule checked ("ok - ...") and per violation ("not ok - ..."); exits 1 on any
violation, 2 on unusable input. --self-test runs every rule against a compliant fixture (which
must pass) and against mutations of it (each must be caught by the rule it breaks), and fails if a
rule is not caught failing by some mutation: a checker that cannot fail is a defect.

Needs PyYAML.

  scripts/check-kubernetes.py --self-test
  scripts/check-kubernetes.py --dockerfile deploy/Dockerfile deploy/kubernetes/*.yaml
"""

import argparse
import copy
import math
import re
import sys

import yaml

# --------------------------------------------------------------------------------------------
# Workloads: where the pod templates are.

TEMPLATE_PATHS = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


class Workload:
    """One pod template: its owner document, its metadata and spec, and the path leading to it."""

    def __init__(self, doc, docs, source):
        self.doc = doc
        self.docs = docs
        self.source = source
        self.kind = doc.get("kind")
        self.name = (doc.get("metadata") or {}).get("name", "?")
        template = doc
        for key in TEMPLATE_PATHS[self.kind]:
            template = (template or {}).get(key) or {}
        self.prefix = "".join(key + "." for key in TEMPLATE_PATHS[self.kind])
        self.metadata = template.get("metadata") or {}
        self.spec = template.get("spec") or {}

    @property
    def label(self):
        return f"{self.kind}/{self.name}"

    def path(self, relative):
        """The full field path of a pod-relative path such as 'spec.hostNetwork'."""
        return self.prefix + relative

    def pod_security_context(self):
        return self.spec.get("securityContext") or {}

    def containers(self):
        """(pod-relative path, container) for every container, init and ephemeral container."""
        for list_name in CONTAINER_LISTS:
            for index, container in enumerate(self.spec.get(list_name) or []):
                yield f"spec.{list_name}[{index}]", container or {}

    def is_windows(self):
        return ((self.spec.get("os") or {}).get("name")) == "windows"


def sc(container):
    return container.get("securityContext") or {}


def get(mapping, *keys):
    """mapping[k1][k2]...; None when any step is missing."""
    for key in keys:
        if not isinstance(mapping, dict) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


# --------------------------------------------------------------------------------------------
# Rules. Each rule is a function (workload) -> list of violation messages, registered with its
# profile, its name and the field paths it checks.

RULES = []


def rule(profile, name, fields):
    def register(function):
        RULES.append({"profile": profile, "name": name, "fields": fields, "check": function})
        return function

    return register


def rule_id(entry):
    return f"{entry['profile']}/{entry['name']}"


# --- Baseline -------------------------------------------------------------------------------


@rule("baseline", "host-process", [
    "spec.securityContext.windowsOptions.hostProcess",
    "spec.{containers,initContainers,ephemeralContainers}[*].securityContext.windowsOptions.hostProcess"])
def host_process(w):
    found = []
    if get(w.pod_security_context(), "windowsOptions", "hostProcess") not in (None, False):
        found.append(f"{w.path('spec.securityContext.windowsOptions.hostProcess')} must be false or unset")
    for path, container in w.containers():
        if get(sc(container), "windowsOptions", "hostProcess") not in (None, False):
            found.append(f"{w.path(path)}.securityContext.windowsOptions.hostProcess must be false or unset")
    return found


@rule("baseline", "host-namespaces", ["spec.hostNetwork", "spec.hostPID", "spec.hostIPC"])
def host_namespaces(w):
    return [f"{w.path('spec.' + field)} must be false or unset"
            for field in ("hostNetwork", "hostPID", "hostIPC") if w.spec.get(field) not in (None, False)]


@rule("baseline", "privileged", ["spec.{containers,initContainers,ephemeralContainers}[*].securityContext.privileged"])
def privileged(w):
    return [f"{w.path(path)}.securityContext.privileged must be false or unset"
            for path, container in w.containers() if sc(container).get("privileged") not in (None, False)]


BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


@rule("baseline", "capabilities", ["spec.{containers,initContainers,ephemeralContainers}[*].securityContext.capabilities.add"])
def baseline_capabilities(w):
    found = []
    for path, container in w.containers():
        for capability in get(sc(container), "capabilities", "add") or []:
            if capability not in BASELINE_CAPABILITIES:
                found.append(f"{w.path(path)}.securityContext.capabilities.add has {capability}, "
                             "beyond the default set")
    return found


@rule("baseline", "hostpath-volumes", ["spec.volumes[*].hostPath"])
def hostpath_volumes(w):
    return [f"{w.path(f'spec.volumes[{index}].hostPath')} is forbidden"
            for index, volume in enumerate(w.spec.get("volumes") or []) if (volume or {}).get("hostPath") is not None]


@rule("baseline", "host-ports", ["spec.{containers,initContainers,ephemeralContainers}[*].ports[*].hostPort"])
def host_ports(w):
    found = []
    for path, container in w.containers():
        for index, port in enumerate(container.get("ports") or []):
            if (port or {}).get("hostPort") not in (None, 0):
                found.append(f"{w.path(path)}.ports[{index}].hostPort must be 0 or unset")
    return found


PROBE_HANDLERS = [
    ("livenessProbe", "httpGet"), ("readinessProbe", "httpGet"), ("startupProbe", "httpGet"),
    ("livenessProbe", "tcpSocket"), ("readinessProbe", "tcpSocket"), ("startupProbe", "tcpSocket"),
    ("lifecycle.postStart", "httpGet"), ("lifecycle.preStop", "httpGet"),
    ("lifecycle.postStart", "tcpSocket"), ("lifecycle.preStop", "tcpSocket")]


@rule("baseline", "host-probes-lifecycle-hooks", [
    "spec.{containers,initContainers,ephemeralContainers}[*]."
    "{livenessProbe,readinessProbe,startupProbe,lifecycle.postStart,lifecycle.preStop}.{httpGet,tcpSocket}.host"])
def host_probes(w):
    found = []
    for path, container in w.containers():
        for handler, action in PROBE_HANDLERS:
            host = get(container, *handler.split("."), action, "host")
            if host not in (None, ""):
                found.append(f"{w.path(path)}.{handler}.{action}.host must be unset (probes target the pod)")
    return found


@rule("baseline", "apparmor", [
    "spec.securityContext.appArmorProfile.type",
    "spec.{containers,initContainers,ephemeralContainers}[*].securityContext.appArmorProfile.type",
    "metadata.annotations['container.apparmor.security.beta.kubernetes.io/*']"])
def apparmor(w):
    found = []
    allowed = (None, "RuntimeDefault", "Localhost")
    if get(w.pod_security_context(), "appArmorProfile", "type") not in allowed:
        found.append(f"{w.path('spec.securityContext.appArmorProfile.type')} must be RuntimeDefault, Localhost or unset")
    for path, container in w.containers():
        if get(sc(container), "appArmorProfile", "type") not in allowed:
            found.append(f"{w.path(path)}.securityContext.appArmorProfile.type must be RuntimeDefault, Localhost or unset")
    for key, value in (w.metadata.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/"):
            if not (value == "runtime/default" or str(value).startswith("localhost/")):
                found.append(f"{w.path('metadata.annotations')}['{key}'] must be runtime/default or localhost/*")
    return found


SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


@rule("baseline", "selinux", [
    "spec.securityContext.seLinuxOptions.{type,user,role}",
    "spec.{containers,initContainers,ephemeralContainers}[*].securityContext.seLinuxOptions.{type,user,role}"])
def selinux(w):
    found = []

    def check(options, where):
        options = options or {}
        if options.get("type") is not None and options.get("type") not in SELINUX_TYPES:
            found.append(f"{where}.type must be one of {sorted(SELINUX_TYPES)} or unset")
        for field in ("user", "role"):
            if options.get(field) not in (None, ""):
                found.append(f"{where}.{field} must be unset")

    check(w.pod_security_context().get("seLinuxOptions"), w.path("spec.securityContext.seLinuxOptions"))
    for path, container in w.containers():
        check(sc(container).get("seLinuxOptions"), f"{w.path(path)}.securityContext.seLinuxOptions")
    return found


@rule("baseline", "proc-mount", ["spec.{containers,initContainers,ephemeralContainers}[*].securityContext.procMount"])
def proc_mount(w):
    return [f"{w.path(path)}.securityContext.procMount must be Default or unset"
            for path, container in w.containers() if sc(container).get("procMount") not in (None, "Default")]


@rule("baseline", "seccomp", [
    "spec.securityContext.seccompProfile.type",
    "spec.{containers,initContainers,ephemeralContainers}[*].securityContext.seccompProfile.type",
    "metadata.annotations['seccomp.security.alpha.kubernetes.io/pod']",
    "metadata.annotations['container.seccomp.security.alpha.kubernetes.io/*']"])
def baseline_seccomp(w):
    found = []
    if get(w.pod_security_context(), "seccompProfile", "type") == "Unconfined":
        found.append(f"{w.path('spec.securityContext.seccompProfile.type')} must not be Unconfined")
    for path, container in w.containers():
        if get(sc(container), "seccompProfile", "type") == "Unconfined":
            found.append(f"{w.path(path)}.securityContext.seccompProfile.type must not be Unconfined")
    for key, value in (w.metadata.get("annotations") or {}).items():
        if (key == "seccomp.security.alpha.kubernetes.io/pod"
                or key.startswith("container.seccomp.security.alpha.kubernetes.io/")) and value == "unconfined":
            found.append(f"{w.path('metadata.annotations')}['{key}'] must not be unconfined")
    return found


SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes"}


@rule("baseline", "sysctls", ["spec.securityContext.sysctls[*].name"])
def sysctls(w):
    return [f"{w.path(f'spec.securityContext.sysctls[{index}].name')} {entry.get('name')!r} is not a safe sysctl"
            for index, entry in enumerate(w.pod_security_context().get("sysctls") or [])
            if (entry or {}).get("name") not in SAFE_SYSCTLS]


# --- Restricted -----------------------------------------------------------------------------

RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


@rule("restricted", "volume-types", ["spec.volumes[*]"])
def volume_types(w):
    found = []
    for index, volume in enumerate(w.spec.get("volumes") or []):
        for source in set(volume or {}) - {"name"} - RESTRICTED_VOLUME_TYPES:
            found.append(f"{w.path(f'spec.volumes[{index}].{source}')}: volume type {source} is not allowed "
                         f"(allowed: {', '.join(sorted(RESTRICTED_VOLUME_TYPES))})")
    return found


@rule("restricted", "privilege-escalation", [
    "spec.{containers,initContainers,ephemeralContainers}[*].securityContext.allowPrivilegeEscalation"])
def privilege_escalation(w):
    if w.is_windows():
        return []
    return [f"{w.path(path)}.securityContext.allowPrivilegeEscalation must be false"
            for path, container in w.containers() if sc(container).get("allowPrivilegeEscalation") is not False]


@rule("restricted", "running-as-non-root", [
    "spec.securityContext.runAsNonRoot",
    "spec.{containers,initContainers,ephemeralContainers}[*].securityContext.runAsNonRoot"])
def running_as_non_root(w):
    found = []
    pod_level = w.pod_security_context().get("runAsNonRoot")
    if pod_level is False:
        found.append(f"{w.path('spec.securityContext.runAsNonRoot')} must be true")
    for path, container in w.containers():
        value = sc(container).get("runAsNonRoot")
        if value is False:
            found.append(f"{w.path(path)}.securityContext.runAsNonRoot must be true")
        elif value is None and pod_level is not True:
            found.append(f"{w.path(path)}.securityContext.runAsNonRoot must be true "
                         f"(or {w.path('spec.securityContext.runAsNonRoot')} true)")
    return found


@rule("restricted", "running-as-non-root-user", [
    "spec.securityContext.runAsUser",
    "spec.{containers,initContainers,ephemeralContainers}[*].securityContext.runAsUser"])
def running_as_non_root_user(w):
    found = []
    if w.pod_security_context().get("runAsUser") == 0:
        found.append(f"{w.path('spec.securityContext.runAsUser')} must not be 0")
    for path, container in w.containers():
        if sc(container).get("runAsUser") == 0:
            found.append(f"{w.path(path)}.securityContext.runAsUser must not be 0")
    return found


@rule("restricted", "seccomp", [
    "spec.securityContext.seccompProfile.type",
    "spec.{containers,initContainers,ephemeralContainers}[*].securityContext.seccompProfile.type"])
def restricted_seccomp(w):
    if w.is_windows():
        return []
    found = []
    allowed = ("RuntimeDefault", "Localhost")
    pod_level = get(w.pod_security_context(), "seccompProfile", "type")
    if pod_level is not None and pod_level not in allowed:
        found.append(f"{w.path('spec.securityContext.seccompProfile.type')} must be RuntimeDefault or Localhost")
    for path, container in w.containers():
        value = get(sc(container), "seccompProfile", "type")
        if value is not None and value not in allowed:
            found.append(f"{w.path(path)}.securityContext.seccompProfile.type must be RuntimeDefault or Localhost")
        elif value is None and pod_level not in allowed:
            found.append(f"{w.path(path)}.securityContext.seccompProfile.type must be set "
                         f"(or {w.path('spec.securityContext.seccompProfile.type')})")
    return found


@rule("restricted", "capabilities", [
    "spec.{containers,initContainers,ephemeralContainers}[*].securityContext.capabilities.drop",
    "spec.{containers,initContainers,ephemeralContainers}[*].securityContext.capabilities.add"])
def restricted_capabilities(w):
    if w.is_windows():
        return []
    found = []
    for path, container in w.containers():
        capabilities = sc(container).get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{w.path(path)}.securityContext.capabilities.drop must include ALL")
        for capability in capabilities.get("add") or []:
            if capability != "NET_BIND_SERVICE":
                found.append(f"{w.path(path)}.securityContext.capabilities.add may hold only NET_BIND_SERVICE, "
                             f"not {capability}")
    return found


# --- Project rules --------------------------------------------------------------------------
# They apply to workloads whose pod runs the app (a container named APP_CONTAINER).

APP_CONTAINER = "app"
GRACE_MARGIN_SECONDS = 5
APP_DEFAULT_PORTS = {"public": 3400, "admin": 3401}
EXPECTED_USER = {"uid": None, "gid": None}  # from --dockerfile


def app_container(w):
    """(pod-relative path, container) of the app's container, or (None, None)."""
    for index, container in enumerate(w.spec.get("containers") or []):
        if (container or {}).get("name") == APP_CONTAINER:
            return f"spec.containers[{index}]", container
    return None, None


def app_rule(name, fields):
    """A project rule: applies only to workloads that run the app's container."""

    def register(function):
        def check(w):
            path, container = app_container(w)
            return [] if container is None else function(w, path, container)

        return rule("project", name, fields)(check)

    return register


def command_line_options(container):
    """The container's --name value / --name=value options (last one wins, as in the app)."""
    words = [str(word) for word in (container.get("command") or []) + (container.get("args") or [])]
    options = {}
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("--"):
            if "=" in word:
                key, value = word[2:].split("=", 1)
                options[key] = value
            elif index + 1 < len(words) and not words[index + 1].startswith("--"):
                options[word[2:]] = words[index + 1]
                index += 1
            else:
                options[word[2:]] = None
        index += 1
    return options


IMAGE_REFERENCE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def image_problem(image):
    """Why an image reference is not qualified and pinned; None when it is."""
    match = IMAGE_REFERENCE.match(image or "")
    if not match:
        return "is not a valid image reference"
    first = match.group("name").split("/")[0]
    if "/" not in match.group("name") or not ("." in first or ":" in first or first == "localhost"):
        return "must name its registry (registry.example.com/name:tag), not rely on a default registry"
    if match.group("digest"):
        return None
    if match.group("tag") is None:
        return "has no tag (it means :latest); give a release tag or a digest"
    if match.group("tag") == "latest":
        return "uses :latest; give a release tag or a digest"
    return None


@rule("project", "image-reference", ["spec.{containers,initContainers,ephemeralContainers}[*].image"])
def image_reference(w):
    found = []
    for path, container in w.containers():
        problem = image_problem(container.get("image"))
        if problem:
            found.append(f"{w.path(path)}.image {container.get('image')!r} {problem}")
    return found


@app_rule("grace-period", [
    "spec.terminationGracePeriodSeconds",
    "spec.containers[app].args --drain-delay, --shutdown-timeout"])
def grace_period(w, path, container):
    options = command_line_options(container)
    found = []
    values = {}
    for option in ("drain-delay", "shutdown-timeout"):
        try:
            values[option] = float(options[option])
        except (KeyError, TypeError, ValueError):
            found.append(f"{w.path(path)}.args must state --{option} N (the grace period is derived from it)")
    if found:
        return found
    expected = math.ceil(values["drain-delay"] + values["shutdown-timeout"]) + GRACE_MARGIN_SECONDS
    grace = w.spec.get("terminationGracePeriodSeconds")
    if grace != expected:
        found.append(f"{w.path('spec.terminationGracePeriodSeconds')} is {grace}, must be drain delay "
                     f"{values['drain-delay']:g} + shutdown timeout {values['shutdown-timeout']:g} + "
                     f"{GRACE_MARGIN_SECONDS} = {expected}")
    return found


@app_rule("probes", [
    "spec.containers[app].readinessProbe", "spec.containers[app].livenessProbe", "spec.containers[app].startupProbe"])
def probes(w, path, container):
    found = []
    where = w.path(path)
    readiness = container.get("readinessProbe")
    liveness = container.get("livenessProbe")
    startup = container.get("startupProbe")
    if not readiness:
        found.append(f"{where}.readinessProbe is missing")
    else:
        if get(readiness, "httpGet", "path") != "/readyz":
            found.append(f"{where}.readinessProbe.httpGet.path must be /readyz (503 from the start of a shutdown)")
        if readiness.get("failureThreshold", 3) < 3:
            found.append(f"{where}.readinessProbe.failureThreshold must be at least 3 (one slow answer is not unready)")
        if readiness.get("timeoutSeconds", 1) < 2:
            found.append(f"{where}.readinessProbe.timeoutSeconds must be at least 2")
        if not 3 <= readiness.get("periodSeconds", 10) <= 10:
            found.append(f"{where}.readinessProbe.periodSeconds must be between 3 and 10")
    if not liveness:
        found.append(f"{where}.livenessProbe is missing")
    else:
        if get(liveness, "httpGet", "path") != "/healthz":
            found.append(f"{where}.livenessProbe.httpGet.path must be /healthz")
        if liveness.get("failureThreshold", 3) < 3:
            found.append(f"{where}.livenessProbe.failureThreshold must be at least 3")
        if liveness.get("timeoutSeconds", 1) < 2:
            found.append(f"{where}.livenessProbe.timeoutSeconds must be at least 2")
        if not startup and liveness.get("initialDelaySeconds", 0) <= 0:
            found.append(f"{where}.livenessProbe needs initialDelaySeconds or a startupProbe")
        window = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
        grace = w.spec.get("terminationGracePeriodSeconds", 30)
        if window < grace:
            found.append(f"{where}.livenessProbe fails after {window} s, less than the {grace} s grace period: "
                         "a draining pod could be taken for a hung one")
    if startup and startup.get("timeoutSeconds", 1) < 2:
        found.append(f"{where}.startupProbe.timeoutSeconds must be at least 2")
    return found


@app_rule("hardening", [
    "spec.automountServiceAccountToken",
    "spec.{containers,initContainers}[*].securityContext.readOnlyRootFilesystem",
    "spec.{containers,initContainers}[*].resources.{requests,limits}.{cpu,memory}"])
def hardening(w, path, container):
    found = []
    if w.spec.get("automountServiceAccountToken") is not False:
        found.append(f"{w.path('spec.automountServiceAccountToken')} must be false (the app never calls the API)")
    for list_name in ("containers", "initContainers"):
        for index, each in enumerate(w.spec.get(list_name) or []):
            where = w.path(f"spec.{list_name}[{index}]")
            if sc(each).get("readOnlyRootFilesystem") is not True:
                found.append(f"{where}.securityContext.readOnlyRootFilesystem must be true")
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if get(each, "resources", section, resource) is None:
                        found.append(f"{where}.resources.{section}.{resource} must be set")
    return found


@app_rule("image-user", ["spec.securityContext.{runAsUser,runAsGroup}", "spec.containers[app].securityContext.{runAsUser,runAsGroup}"])
def image_user(w, path, container):
    found = []
    for field, key in (("runAsUser", "uid"), ("runAsGroup", "gid")):
        expected = EXPECTED_USER[key]
        if expected is None:
            continue
        value = sc(container).get(field, w.pod_security_context().get(field))
        if value != expected:
            found.append(f"{w.path('spec.securityContext.' + field)} is {value}, the image's USER has {expected}")
    return found


@app_rule("admin-token", ["spec.containers[app].env[APP_ADMIN_TOKEN].valueFrom.secretKeyRef.optional"])
def admin_token(w, path, container):
    for index, variable in enumerate(container.get("env") or []):
        if (variable or {}).get("name") != "APP_ADMIN_TOKEN":
            continue
        where = f"{w.path(path)}.env[{index}]"
        reference = get(variable, "valueFrom", "secretKeyRef")
        if reference is None:
            return [f"{where} must come from a Secret (valueFrom.secretKeyRef), not the manifest"]
        if reference.get("optional") is not False:
            return [f"{where}.valueFrom.secretKeyRef.optional must be false: without the secret the admin API "
                    "would run unprotected"]
        return []
    return [f"{w.path(path)}.env must set APP_ADMIN_TOKEN from a Secret (the admin API is protected by default)"]


@app_rule("ports", ["spec.containers[app].ports[public,admin].containerPort",
                    "spec.containers[app].args --public-port, --admin-port"])
def ports(w, path, container):
    found = []
    options = command_line_options(container)
    named = {port.get("name"): port.get("containerPort") for port in container.get("ports") or []}
    for name, default in APP_DEFAULT_PORTS.items():
        try:
            expected = int(options.get(f"{name}-port") or default)
        except ValueError:
            found.append(f"{w.path(path)}.args --{name}-port {options.get(name + '-port')!r} is not a port number")
            continue
        if named.get(name) != expected:
            found.append(f"{w.path(path)}.ports[name={name}].containerPort is {named.get(name)}, "
                         f"the app listens on {expected}")
    return found


@app_rule("prometheus-annotations", ["metadata.annotations['prometheus.io/{scrape,port,path}']"])
def prometheus_annotations(w, path, container):
    annotations = w.metadata.get("annotations") or {}
    admin_port = next((str(port.get("containerPort")) for port in container.get("ports") or []
                       if port.get("name") == "admin"), str(APP_DEFAULT_PORTS["admin"]))
    expected = {"prometheus.io/scrape": "true", "prometheus.io/port": admin_port, "prometheus.io/path": "/admin/metrics"}
    return [f"{w.path('metadata.annotations')}['{key}'] is {annotations.get(key)!r}, must be {value!r}"
            for key, value in expected.items() if annotations.get(key) != value]


def percent_or_int_positive(value):
    if isinstance(value, str) and value.endswith("%"):
        return float(value[:-1]) > 0
    return isinstance(value, int) and value > 0


@app_rule("disruption-budget", ["spec.replicas", "PodDisruptionBudget(policy/v1).spec.{selector,maxUnavailable,minAvailable}"])
def disruption_budget(w, path, container):
    if w.kind not in ("Deployment", "StatefulSet", "ReplicaSet"):
        return []
    found = []
    replicas = (w.doc.get("spec") or {}).get("replicas", 1)
    if replicas < 2:
        found.append(f"spec.replicas is {replicas}: at least 2, so a disruption leaves one serving")
    labels = w.metadata.get("labels") or {}
    namespace = (w.doc.get("metadata") or {}).get("namespace")
    budgets = [doc for doc in w.docs
               if doc.get("kind") == "PodDisruptionBudget" and doc.get("apiVersion") == "policy/v1"
               and (doc.get("metadata") or {}).get("namespace") == namespace
               and (get(doc, "spec", "selector", "matchLabels") or {})
               and (get(doc, "spec", "selector", "matchLabels") or {}).items() <= labels.items()]
    if not budgets:
        found.append(f"no PodDisruptionBudget (policy/v1) selects the pods of {w.label}")
    for budget in budgets:
        spec = budget.get("spec") or {}
        name = f"PodDisruptionBudget/{(budget.get('metadata') or {}).get('name')}"
        if "maxUnavailable" in spec:
            if not percent_or_int_positive(spec["maxUnavailable"]):
                found.append(f"{name}.spec.maxUnavailable must allow one disruption (it would block node drains)")
        elif isinstance(spec.get("minAvailable"), int):
            if spec["minAvailable"] >= replicas:
                found.append(f"{name}.spec.minAvailable {spec['minAvailable']} >= replicas {replicas} blocks node drains")
        elif spec.get("minAvailable") == "100%":
            found.append(f"{name}.spec.minAvailable 100% blocks node drains")
    return found


# --------------------------------------------------------------------------------------------
# Running.


def workloads(docs, source="?"):
    return [Workload(doc, docs, source) for doc in docs if isinstance(doc, dict) and doc.get("kind") in TEMPLATE_PATHS]


def check(docs, source, out):
    """Runs every rule on every pod template; returns the number of violations."""
    violations = 0
    found_any = False
    for workload in workloads(docs, source):
        found_any = True
        for entry in RULES:
            problems = entry["check"](workload)
            status = "not ok" if problems else "ok"
            print(f"{status} - {rule_id(entry)}: {workload.label} ({'; '.join(entry['fields'])})", file=out)
            for problem in problems:
                print(f"not ok - {rule_id(entry)}: {workload.label}: {problem}", file=out)
                violations += 1
    if not found_any:
        print(f"not ok - no pod template found in {source}", file=out)
        violations += 1
    return violations


def read_dockerfile_user(path):
    user = None
    with open(path, encoding="utf-8") as file:
        for line in file:
            match = re.match(r"^\s*USER\s+(\S+)", line, re.IGNORECASE)
            if match:
                user = match.group(1)
    if user is None:
        raise SystemExit(f"not ok - {path} has no USER line")
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise SystemExit(f"not ok - {path}: USER {user} must be numeric (runAsNonRoot cannot check a name)")
    return int(uid), int(gid) if gid else None


# --------------------------------------------------------------------------------------------
# Self-test: a compliant Deployment + PodDisruptionBudget, and mutations that each break one rule.

GOOD_FIXTURE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: fixture}
spec:
  replicas: 2
  selector: {matchLabels: {app: fixture}}
  template:
    metadata:
      labels: {app: fixture}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "3401"
        prometheus.io/path: /admin/metrics
        container.apparmor.security.beta.kubernetes.io/app: runtime/default
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 25
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
        sysctls: [{name: net.ipv4.ip_local_port_range, value: "1024 65535"}]
      volumes:
        - {name: scratch, emptyDir: {}}
        - {name: config, configMap: {name: fixture}}
      initContainers:
        - name: init
          image: registry.example.com/init@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
          resources: {requests: {cpu: 10m, memory: 8Mi}, limits: {cpu: 100m, memory: 16Mi}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
      containers:
        - name: app
          image: registry.example.com/fixture:1.0.0
          args: ["--drain-delay", "5", "--shutdown-timeout=15"]
          env:
            - name: APP_ADMIN_TOKEN
              valueFrom: {secretKeyRef: {name: fixture, key: admin-token, optional: false}}
          ports:
            - {name: public, containerPort: 3400}
            - {name: admin, containerPort: 3401}
          startupProbe: {httpGet: {path: /healthz, port: admin}, periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 30}
          livenessProbe: {httpGet: {path: /healthz, port: admin}, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3}
          readinessProbe: {httpGet: {path: /readyz, port: public}, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 3}
          resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: "1", memory: 128Mi}}
          volumeMounts: [{name: scratch, mountPath: /tmp}]
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: fixture}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: fixture}}
"""


def pod(docs):
    return docs[0]["spec"]["template"]["spec"]


def app(docs):
    return pod(docs)["containers"][0]


def init(docs):
    return pod(docs)["initContainers"][0]


def annotations(docs):
    return docs[0]["spec"]["template"]["metadata"]["annotations"]


def set_in(mapping, dotted, value):
    keys = dotted.split(".")
    for key in keys[:-1]:
        mapping = mapping.setdefault(key, {})
    mapping[keys[-1]] = value


def delete_in(mapping, dotted):
    keys = dotted.split(".")
    for key in keys[:-1]:
        mapping = mapping[key]
    del mapping[keys[-1]]


# (expected rule, description, mutation). Every rule must appear at least once.
MUTATIONS = [
    ("baseline/host-process", "pod windowsOptions.hostProcess true",
     lambda d: set_in(pod(d), "securityContext.windowsOptions.hostProcess", True)),
    ("baseline/host-process", "container windowsOptions.hostProcess true",
     lambda d: set_in(app(d), "securityContext.windowsOptions.hostProcess", True)),
    ("baseline/host-namespaces", "hostNetwork true", lambda d: set_in(pod(d), "hostNetwork", True)),
    ("baseline/host-namespaces", "hostPID true", lambda d: set_in(pod(d), "hostPID", True)),
    ("baseline/host-namespaces", "hostIPC true", lambda d: set_in(pod(d), "hostIPC", True)),
    ("baseline/privileged", "privileged container", lambda d: set_in(app(d), "securityContext.privileged", True)),
    ("baseline/privileged", "privileged init container", lambda d: set_in(init(d), "securityContext.privileged", True)),
    ("baseline/capabilities", "SYS_ADMIN added", lambda d: set_in(app(d), "securityContext.capabilities.add", ["SYS_ADMIN"])),
    ("baseline/hostpath-volumes", "hostPath volume",
     lambda d: pod(d)["volumes"].append({"name": "host", "hostPath": {"path": "/"}})),
    ("baseline/host-ports", "hostPort 8080", lambda d: app(d)["ports"][0].update(hostPort=8080)),
    ("baseline/host-probes-lifecycle-hooks", "liveness httpGet.host",
     lambda d: set_in(app(d), "livenessProbe.httpGet.host", "169.254.169.254")),
    ("baseline/host-probes-lifecycle-hooks", "preStop tcpSocket.host",
     lambda d: set_in(app(d), "lifecycle.preStop.tcpSocket", {"host": "10.0.0.1", "port": 80})),
    ("baseline/apparmor", "pod appArmorProfile Unconfined",
     lambda d: set_in(pod(d), "securityContext.appArmorProfile.type", "Unconfined")),
    ("baseline/apparmor", "apparmor annotation unconfined",
     lambda d: annotations(d).update({"container.apparmor.security.beta.kubernetes.io/app": "unconfined"})),
    ("baseline/selinux", "seLinuxOptions.type spc_t", lambda d: set_in(pod(d), "securityContext.seLinuxOptions.type", "spc_t")),
    ("baseline/selinux", "container seLinuxOptions.user",
     lambda d: set_in(app(d), "securityContext.seLinuxOptions.user", "system_u")),
    ("baseline/proc-mount", "procMount Unmasked", lambda d: set_in(app(d), "securityContext.procMount", "Unmasked")),
    ("baseline/seccomp", "pod seccomp Unconfined", lambda d: set_in(pod(d), "securityContext.seccompProfile.type", "Unconfined")),
    ("baseline/seccomp", "container seccomp Unconfined",
     lambda d: set_in(app(d), "securityContext.seccompProfile.type", "Unconfined")),
    ("baseline/sysctls", "unsafe sysctl kernel.msgmax",
     lambda d: pod(d)["securityContext"]["sysctls"].append({"name": "kernel.msgmax", "value": "1"})),
    ("restricted/volume-types", "nfs volume",
     lambda d: pod(d)["volumes"].append({"name": "n", "nfs": {"server": "nfs", "path": "/"}})),
    ("restricted/volume-types", "hostPath volume (also restricted)",
     lambda d: pod(d)["volumes"].append({"name": "host", "hostPath": {"path": "/"}})),
    ("restricted/privilege-escalation", "allowPrivilegeEscalation unset",
     lambda d: delete_in(app(d), "securityContext.allowPrivilegeEscalation")),
    ("restricted/privilege-escalation", "init allowPrivilegeEscalation true",
     lambda d: set_in(init(d), "securityContext.allowPrivilegeEscalation", True)),
    ("restricted/running-as-non-root", "runAsNonRoot removed", lambda d: delete_in(pod(d), "securityContext.runAsNonRoot")),
    ("restricted/running-as-non-root", "container runAsNonRoot false",
     lambda d: set_in(app(d), "securityContext.runAsNonRoot", False)),
    ("restricted/running-as-non-root-user", "runAsUser 0", lambda d: set_in(app(d), "securityContext.runAsUser", 0)),
    ("restricted/seccomp", "seccompProfile removed", lambda d: delete_in(pod(d), "securityContext.seccompProfile")),
    ("restricted/seccomp", "container seccomp Unconfined",
     lambda d: set_in(app(d), "securityContext.seccompProfile.type", "Unconfined")),
    ("restricted/capabilities", "capabilities not dropped", lambda d: delete_in(app(d), "securityContext.capabilities")),
    ("restricted/capabilities", "CHOWN added", lambda d: set_in(init(d), "securityContext.capabilities.add", ["CHOWN"])),
    ("project/image-reference", ":latest", lambda d: app(d).update(image="registry.example.com/fixture:latest")),
    ("project/image-reference", "untagged", lambda d: app(d).update(image="registry.example.com/fixture")),
    ("project/image-reference", "no registry", lambda d: app(d).update(image="fixture:1.0.0")),
    ("project/grace-period", "grace period changed alone", lambda d: pod(d).update(terminationGracePeriodSeconds=30)),
    ("project/grace-period", "shutdown timeout changed alone",
     lambda d: app(d).update(args=["--drain-delay", "5", "--shutdown-timeout", "20"])),
    ("project/grace-period", "drain delay not stated", lambda d: app(d).update(args=["--shutdown-timeout", "15"])),
    ("project/probes", "readiness failureThreshold 1", lambda d: app(d)["readinessProbe"].update(failureThreshold=1)),
    ("project/probes", "readiness timeoutSeconds 1", lambda d: app(d)["readinessProbe"].update(timeoutSeconds=1)),
    ("project/probes", "readiness periodSeconds 1", lambda d: app(d)["readinessProbe"].update(periodSeconds=1)),
    ("project/probes", "liveness without startupProbe or initialDelaySeconds", lambda d: app(d).pop("startupProbe")),
    ("project/probes", "liveness window shorter than the grace period", lambda d: app(d)["livenessProbe"].update(periodSeconds=5)),
    ("project/probes", "no readiness probe", lambda d: app(d).pop("readinessProbe")),
    ("project/hardening", "readOnlyRootFilesystem false", lambda d: set_in(app(d), "securityContext.readOnlyRootFilesystem", False)),
    ("project/hardening", "no CPU limit", lambda d: delete_in(app(d), "resources.limits.cpu")),
    ("project/hardening", "service account token mounted", lambda d: pod(d).update(automountServiceAccountToken=True)),
    ("project/image-user", "runAsUser differs from the image's USER", lambda d: set_in(pod(d), "securityContext.runAsUser", 1000)),
    ("project/admin-token", "APP_ADMIN_TOKEN optional", lambda d: app(d)["env"][0]["valueFrom"]["secretKeyRef"].update(optional=True)),
    ("project/admin-token", "APP_ADMIN_TOKEN missing", lambda d: app(d).update(env=[])),
    ("project/admin-token", "APP_ADMIN_TOKEN literal", lambda d: app(d).update(env=[{"name": "APP_ADMIN_TOKEN", "value": "x"}])),
    ("project/ports", "admin containerPort differs from the app's", lambda d: app(d)["ports"][1].update(containerPort=9090)),
    ("project/prometheus-annotations", "scrape annotation missing", lambda d: annotations(d).pop("prometheus.io/scrape")),
    ("project/prometheus-annotations", "metrics path wrong", lambda d: annotations(d).update({"prometheus.io/path": "/metrics"})),
    ("project/disruption-budget", "no PodDisruptionBudget", lambda d: d.pop(1)),
    ("project/disruption-budget", "budget blocks every eviction", lambda d: d[1]["spec"].update(maxUnavailable=0)),
    ("project/disruption-budget", "one replica", lambda d: d[0]["spec"].update(replicas=1)),
]


def violations_by_rule(docs):
    found = {}
    for workload in workloads(docs):
        for entry in RULES:
            problems = entry["check"](workload)
            if problems:
                found.setdefault(rule_id(entry), []).extend(problems)
    return found


def self_test(out):
    failures = 0
    saved_user = dict(EXPECTED_USER)
    EXPECTED_USER.update(uid=65532, gid=65532)
    try:
        good = list(yaml.safe_load_all(GOOD_FIXTURE))
        clean = violations_by_rule(good)
        if clean:
            failures += 1
            print(f"not ok - self-test: the compliant fixture passes (it fails {sorted(clean)}: {clean})", file=out)
        else:
            print("ok - self-test: the compliant fixture passes every rule", file=out)
        caught = set()
        for expected, description, mutate in MUTATIONS:
            docs = copy.deepcopy(good)
            mutate(docs)
            found = violations_by_rule(docs)
            if expected in found:
                caught.add(expected)
                print(f"ok - self-test: {expected} catches '{description}': {found[expected][0]}", file=out)
            else:
                failures += 1
                print(f"not ok - self-test: {expected} misses '{description}' (reported: {sorted(found) or 'nothing'})",
                      file=out)
        for entry in RULES:
            if rule_id(entry) not in caught:
                failures += 1
                print(f"not ok - self-test: no mutation shows {rule_id(entry)} failing", file=out)
        # Windows pods are exempt from the Linux-only restricted controls, not from the others.
        docs = copy.deepcopy(good)
        set_in(pod(docs), "os", {"name": "windows"})
        delete_in(pod(docs), "securityContext.seccompProfile")
        delete_in(app(docs), "securityContext.capabilities")
        set_in(pod(docs), "hostNetwork", True)
        found = violations_by_rule(docs)
        exempt = {"restricted/seccomp", "restricted/capabilities"} & set(found)
        if exempt or "baseline/host-namespaces" not in found:
            failures += 1
            print(f"not ok - self-test: Windows pod exemptions (reported: {sorted(found)})", file=out)
        else:
            print("ok - self-test: a Windows pod is exempt from the Linux-only controls only", file=out)
    finally:
        EXPECTED_USER.clear()
        EXPECTED_USER.update(saved_user)
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="*", help="YAML files (several documents each allowed)")
    parser.add_argument("--dockerfile", help="the image's Dockerfile: runAsUser/runAsGroup must match its USER")
    parser.add_argument("--self-test", action="store_true", help="prove every rule can fail, then check the files")
    arguments = parser.parse_args()
    if not arguments.manifests and not arguments.self_test:
        parser.error("give manifests, --self-test, or both")

    failures = 0
    if arguments.self_test:
        failures += self_test(sys.stdout)
    if arguments.dockerfile:
        uid, gid = read_dockerfile_user(arguments.dockerfile)
        EXPECTED_USER.update(uid=uid, gid=gid)
    documents = []
    for path in arguments.manifests:
        try:
            with open(path, encoding="utf-8") as file:
                documents.extend((path, doc) for doc in yaml.safe_load_all(file) if doc)
        except (OSError, yaml.YAMLError) as error:
            print(f"not ok - read {path}: {error}")
            return 2
    if arguments.manifests:
        # PodDisruptionBudgets and other objects may sit in other files: rules see all documents.
        every = [doc for _, doc in documents]
        with_templates = [path for path, doc in documents if doc.get("kind") in TEMPLATE_PATHS]
        if not with_templates:
            print(f"not ok - no pod template in {' '.join(arguments.manifests)}")
            return 1
        failures += check(every, " ".join(arguments.manifests), sys.stdout)
    print(f"{'not ok' if failures else 'ok'} - policy check: {failures} violation(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
