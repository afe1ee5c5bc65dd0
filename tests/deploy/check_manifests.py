#!/usr/bin/python3
"""Checks invariants of the Kubernetes, KServe and monitoring manifests.

Runs on the raw resource files (deploy/k8s/base, deploy/k8s/kserve,
deploy/k8s/modelmesh, deploy/monitoring) always, and on each rendered overlay when `kubectl
kustomize` or `kustomize build` is available. The invariants are the ones a
schema validator cannot see: objects that must refer to each other (selectors,
port names, claims, scale targets), flags that must agree with the pod spec
(--threads and the CPU limit, the shutdown grace and the termination grace
period, the trainer's publish directory and the servers' repository), and the
generated PrometheusRule against deploy/monitoring/alerts.yml.

  check_manifests.py [--repo DIR] [--renderer auto|kubectl|kustomize|none]
  check_manifests.py --selftest   # breaks copies of the objects, expects errors

Exit status: 0 all checks pass, 1 a check failed (each failure names the
object and the field), 2 usage error, 77 PyYAML missing (ctest: skipped).
"""

import argparse
import copy
import glob
import math
import os
import re
import shutil
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("check_manifests: SKIPPED, PyYAML is missing (Debian: python3-yaml)")
    sys.exit(77)

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
SERVER_READY_SERVICE = "inference.GRPCInferenceService"
DEFAULT_SHUTDOWN_GRACE = 30  # flexor_server --shutdown-grace-secs default
DEFAULT_TERMINATION_GRACE = 30  # Kubernetes default
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002


# ---------------------------------------------------------------- helpers

def name_of(obj):
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return "%s %s%s" % (obj.get("kind"), (ns + "/") if ns else "",
                        meta.get("name"))


def ns_of(obj):
    return (obj.get("metadata") or {}).get("namespace") or ""


def dig(obj, *path, default=None):
    for key in path:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and key < len(obj):
            obj = obj[key]
        else:
            return default
        if obj is None:
            return default
    return obj


def pod_template(obj):
    """(pod metadata, pod spec, field path of the pod spec) of a Pod or a
    workload's pod template, else None."""
    kind = obj.get("kind")
    if kind == "Pod":
        return obj.get("metadata") or {}, obj.get("spec") or {}, "spec"
    if kind == "CronJob":
        tpl = dig(obj, "spec", "jobTemplate", "spec", "template")
        path = "spec.jobTemplate.spec.template.spec"
    elif kind in WORKLOAD_KINDS:
        tpl = dig(obj, "spec", "template")
        path = "spec.template.spec"
    else:
        return None
    if not isinstance(tpl, dict):
        return None
    return tpl.get("metadata") or {}, tpl.get("spec") or {}, path


def all_containers(pod_spec):
    for field in ("initContainers", "containers"):
        for c in pod_spec.get(field) or []:
            yield field, c


def parse_flags(container):
    """--flag=value and --flag value arguments; dashes and underscores equal."""
    argv = [str(a) for a in (container.get("command") or []) +
            (container.get("args") or [])]
    flags = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            key, sep, value = arg[2:].partition("=")
            if not sep and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value = argv[i + 1]
                i += 1
            flags[key.replace("_", "-")] = value
        i += 1
    return flags


def cpu_cores(quantity):
    if quantity is None:
        return None
    text = str(quantity)
    if text.endswith("m"):
        return float(text[:-1]) / 1000.0
    return float(text)


def squeeze(value):
    """`value` with every run of whitespace in its strings made one space."""
    if isinstance(value, dict):
        return {k: squeeze(v) for k, v in value.items()}
    if isinstance(value, list):
        return [squeeze(v) for v in value]
    if isinstance(value, str):
        return " ".join(value.split())
    return value


def labels_match(selector, labels):
    """Whether a selector selects `labels`. A Service's selector is a plain
    map; other objects use a LabelSelector (matchLabels, matchExpressions).
    An empty or missing selector selects nothing here (never intended)."""
    if not selector:
        return False
    labels = labels or {}
    if "matchLabels" in selector or "matchExpressions" in selector:
        match = selector.get("matchLabels") or {}
        expressions = selector.get("matchExpressions") or []
    else:
        match, expressions = selector, []
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    for expr in expressions:
        key, op = expr.get("key"), expr.get("operator")
        values = expr.get("values") or []
        if (op == "In" and labels.get(key) not in values) or \
                (op == "NotIn" and labels.get(key) in values) or \
                (op == "Exists" and key not in labels) or \
                (op == "DoesNotExist" and key in labels):
            return False
    return True


def container_port_names_numbers(pod_spec, containers=("containers",)):
    names, numbers = set(), set()
    for field, c in all_containers(pod_spec):
        if field not in containers:
            continue
        for p in c.get("ports") or []:
            if p.get("name"):
                names.add(p["name"])
            if p.get("containerPort") is not None:
                numbers.add(int(p["containerPort"]))
    return names, numbers


def resolve_path(pod_spec, container, path):
    """Where `path` of `container` lives: ('pvc', claim, path in volume),
    ('volume', name, path) for other volumes, or None (image filesystem)."""
    best = None
    for m in container.get("volumeMounts") or []:
        mount = m.get("mountPath", "").rstrip("/") or "/"
        if path == mount or path.startswith(mount.rstrip("/") + "/"):
            if best is None or len(mount) > len(best[0]):
                best = (mount, m)
    if best is None:
        return None
    mount, m = best
    rel = path[len(mount):].strip("/")
    inner = "/".join(p for p in (m.get("subPath", "").strip("/"), rel) if p)
    for v in pod_spec.get("volumes") or []:
        if v.get("name") == m.get("name"):
            claim = dig(v, "persistentVolumeClaim", "claimName")
            if claim:
                return ("pvc", claim, inner)
            return ("volume", v.get("name"), inner)
    return ("missing-volume", m.get("name"), inner)


def prestop_sleep_seconds(container):
    pre = dig(container, "lifecycle", "preStop") or {}
    if dig(pre, "sleep", "seconds") is not None:
        return int(pre["sleep"]["seconds"])
    cmd = " ".join(str(x) for x in dig(pre, "exec", "command", default=[]))
    found = re.search(r"sleep\s+(\d+)", cmd)
    return int(found.group(1)) if found else 0


def is_server(container):
    return "model-repository" in parse_flags(container) and \
        container.get("name") != "kserve-container"


def is_trainer(container):
    flags = parse_flags(container)
    return "publish-dir" in flags or "publish-server" in flags


# ---------------------------------------------------------------- checker

class Checker:
    def __init__(self, objects, label, alerts_path):
        self.objects = [o for o in objects if isinstance(o, dict) and o.get("kind")]
        self.label = label
        self.alerts_path = alerts_path
        self.errors = []
        self.checked = []
        self.notes = []

    def error(self, obj, field, message):
        self.errors.append("%s: %s, field %s: %s" % (self.label, name_of(obj),
                                                     field, message))

    def ok(self, what):
        self.checked.append(what)

    def of_kind(self, *kinds):
        return [o for o in self.objects if o.get("kind") in kinds]

    def run(self):
        for check in (self.check_containers, self.check_probes,
                      self.check_server_flags, self.check_services,
                      self.check_service_monitors, self.check_scale_targets,
                      self.check_claims, self.check_trainer_publish,
                      self.check_prometheus_rules, self.check_kserve,
                      self.check_modelmesh):
            check()
        return self.errors

    # Every container: image, requests and limits, non-root, no privileges.
    def check_containers(self):
        for obj in self.objects:
            kind = obj.get("kind")
            if kind in WORKLOAD_KINDS + ("Pod",):
                _, pod, path = pod_template(obj) or ({}, {}, "spec")
                pod_sc = pod.get("securityContext") or {}
                conts = [("%s.%s" % (path, f), c) for f, c in all_containers(pod)]
            elif kind in ("ClusterServingRuntime", "ServingRuntime"):
                pod_sc = {}
                conts = [("spec.containers", c) for c in dig(obj, "spec", "containers", default=[])]
            else:
                continue
            if not conts:
                self.error(obj, "containers", "no containers")
            for base, c in conts:
                field = "%s[%s]" % (base, c.get("name"))
                if not c.get("image"):
                    self.error(obj, field + ".image", "no image")
                res = c.get("resources") or {}
                for part in ("requests", "limits"):
                    if not res.get(part):
                        self.error(obj, "%s.resources.%s" % (field, part),
                                   "missing: every container needs requests and limits")
                for key in ("cpu", "memory"):
                    if not dig(res, "requests", key):
                        self.error(obj, "%s.resources.requests.%s" % (field, key), "missing")
                if not dig(res, "limits", "memory"):
                    self.error(obj, field + ".resources.limits.memory",
                               "missing: without a memory limit one pod can starve the node")
                sc = c.get("securityContext") or {}
                non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
                user = sc.get("runAsUser", pod_sc.get("runAsUser"))
                if non_root is not True or user == 0:
                    self.error(obj, field + ".securityContext.runAsNonRoot",
                               "must run non-root (runAsNonRoot: true, runAsUser != 0)")
                if sc.get("allowPrivilegeEscalation") is not False:
                    self.error(obj, field + ".securityContext.allowPrivilegeEscalation",
                               "must be false")
                if "ALL" not in (dig(sc, "capabilities", "drop") or []):
                    self.error(obj, field + ".securityContext.capabilities.drop",
                               "must drop ALL")
                self.ok("%s %s: image, resources, non-root" % (name_of(obj), c.get("name")))

    # Probes are gRPC on a declared port; the server has all three.
    def check_probes(self):
        for obj in self.objects:
            tpl = pod_template(obj)
            if not tpl:
                continue
            _, pod, path = tpl
            names, numbers = container_port_names_numbers(pod)
            for f, c in all_containers(pod):
                field = "%s.%s[%s]" % (path, f, c.get("name"))
                for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
                    probe = c.get(probe_name)
                    if probe is None:
                        if is_server(c):
                            self.error(obj, "%s.%s" % (field, probe_name),
                                       "the server needs startup, liveness and readiness probes")
                        continue
                    if "grpc" not in probe:
                        self.error(obj, "%s.%s" % (field, probe_name),
                                   "must be a gRPC probe (grpc.health.v1), not %s"
                                   % ",".join(k for k in probe if k in
                                              ("httpGet", "tcpSocket", "exec")))
                        continue
                    port = probe["grpc"].get("port")
                    if port not in numbers and port not in names:
                        self.error(obj, "%s.%s.grpc.port" % (field, probe_name),
                                   "port %s is not a declared containerPort %s"
                                   % (port, sorted(numbers)))
                    service = probe["grpc"].get("service", "")
                    if is_server(c) and probe_name == "readinessProbe" and \
                            service != SERVER_READY_SERVICE:
                        self.error(obj, "%s.readinessProbe.grpc.service" % field,
                                   "must be %s (ready, not only alive)" % SERVER_READY_SERVICE)
                    if is_server(c) and probe_name == "startupProbe" and service:
                        self.error(obj, "%s.startupProbe.grpc.service" % field,
                                   "must be \"\" (the port answers at once; startup "
                                   "loads are gated by readiness, and a startup probe "
                                   "on readiness restarts replicas whose loads are slow)")
                    if is_server(c) and probe_name == "livenessProbe" and service:
                        self.error(obj, "%s.livenessProbe.grpc.service" % field,
                                   "must be \"\" (process health): a draining or model-less "
                                   "server must not be restarted")
                if is_server(c):
                    self.ok("%s %s: gRPC probes on declared ports" % (name_of(obj), c.get("name")))

    # Server flags agree with the pod: threads vs CPU limit, grace periods,
    # ports, control mode vs replicas.
    def check_server_flags(self):
        hpa_targets = {(ns_of(h), dig(h, "spec", "scaleTargetRef", "name"))
                       for h in self.of_kind("HorizontalPodAutoscaler")
                       if dig(h, "spec", "scaleTargetRef", "kind") == "Deployment"}
        for obj in self.of_kind("Deployment", "StatefulSet"):
            _, pod, path = pod_template(obj)
            for f, c in all_containers(pod):
                if f != "containers" or not is_server(c):
                    continue
                field = "%s.containers[%s]" % (path, c.get("name"))
                flags = parse_flags(c)
                limit = cpu_cores(dig(c, "resources", "limits", "cpu"))
                threads = flags.get("threads")
                if limit is None:
                    self.error(obj, field + ".resources.limits.cpu",
                               "the server needs a CPU limit to size --threads")
                elif threads is None or not threads.isdigit() or \
                        int(threads) != math.ceil(limit):
                    self.error(obj, field + ".args --threads",
                               "--threads=%s must equal the CPU limit rounded up (%d)"
                               % (threads, math.ceil(limit)))
                grace = int(flags.get("shutdown-grace-secs", DEFAULT_SHUTDOWN_GRACE))
                pre = prestop_sleep_seconds(c)
                tgps = int(pod.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE))
                if tgps <= grace + pre:
                    self.error(obj, path + ".terminationGracePeriodSeconds",
                               "%d must exceed --shutdown-grace-secs (%d) + preStop sleep (%d)"
                               % (tgps, grace, pre))
                names, numbers = container_port_names_numbers({"containers": [c]})
                for flag, default, port_name in (("grpc-port", DEFAULT_GRPC_PORT, "grpc"),
                                                 ("metrics-port", DEFAULT_METRICS_PORT, "metrics")):
                    port = int(flags.get(flag, default))
                    declared = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
                    if declared.get(port_name) != port:
                        self.error(obj, field + ".ports",
                                   "--%s=%d but the port named %s is %s"
                                   % (flag, port, port_name, declared.get(port_name)))
                replicas = dig(obj, "spec", "replicas")
                scaled = (ns_of(obj), dig(obj, "metadata", "name")) in hpa_targets
                if scaled and replicas is not None:
                    self.error(obj, "spec.replicas",
                               "set while a HorizontalPodAutoscaler owns the replica count "
                               "(every apply would reset it)")
                mode = flags.get("model-control-mode", "none")
                if (scaled or (replicas or 1) > 1) and mode != "poll":
                    self.error(obj, field + ".args --model-control-mode",
                               "%s with several replicas: use poll, so that every replica "
                               "follows the shared repository" % mode)
                self.ok("%s: --threads=%s (CPU limit %s), grace %ds > %d+%d, mode %s"
                        % (name_of(obj), threads, limit, tgps, grace, pre, mode))

    # Service selectors select a workload whose containers have the targetPorts.
    def check_services(self):
        workloads = [o for o in self.of_kind(*WORKLOAD_KINDS) if o.get("kind") not in
                     ("Job", "CronJob")]
        for svc in self.of_kind("Service"):
            selector = dig(svc, "spec", "selector")
            if not selector:
                self.error(svc, "spec.selector", "missing")
                continue
            matched = [w for w in workloads if ns_of(w) == ns_of(svc) and
                       labels_match(selector, pod_template(w)[0].get("labels"))]
            if not matched:
                self.error(svc, "spec.selector",
                           "%s selects no Deployment's pod labels" % selector)
                continue
            for w in matched:
                names, numbers = container_port_names_numbers(pod_template(w)[1])
                for p in dig(svc, "spec", "ports", default=[]):
                    target = p.get("targetPort", p.get("port"))
                    if target not in names and target not in numbers:
                        self.error(svc, "spec.ports[%s].targetPort" % p.get("name"),
                                   "%s is not a port of %s's containers" % (target, name_of(w)))
                self.ok("%s -> %s: selector and targetPorts" % (name_of(svc), name_of(w)))

    # ServiceMonitors select a Service that has the endpoint's port name; the
    # job name they produce is the one alerts.yml uses.
    def check_service_monitors(self):
        alert_jobs = set()
        if self.alerts_path and os.path.exists(self.alerts_path):
            with open(self.alerts_path, encoding="utf-8") as f:
                alert_jobs = set(re.findall(r'job="([^"]+)"', f.read()))
        for sm in self.of_kind("ServiceMonitor"):
            selector = dig(sm, "spec", "selector") or {}
            any_ns = dig(sm, "spec", "namespaceSelector", "any") is True
            matched = [s for s in self.of_kind("Service")
                       if (any_ns or ns_of(s) == ns_of(sm)) and
                       labels_match(selector, dig(s, "metadata", "labels"))]
            if not matched:
                self.error(sm, "spec.selector", "%s matches no Service's labels" % selector)
                continue
            for ep in dig(sm, "spec", "endpoints", default=[]):
                for s in matched:
                    ports = [p.get("name") for p in dig(s, "spec", "ports", default=[])]
                    if ep.get("port") not in ports:
                        self.error(sm, "spec.endpoints.port",
                                   "%s is not a port name of %s %s" % (ep.get("port"), name_of(s), ports))
            job_label = dig(sm, "spec", "jobLabel")
            for s in matched:
                job = dig(s, "metadata", "labels", job_label) if job_label else \
                    dig(s, "metadata", "name")
                if alert_jobs and job not in alert_jobs:
                    self.error(sm, "spec.selector",
                               "scrapes %s as job=%r but alerts.yml matches job=%s"
                               % (name_of(s), job, sorted(alert_jobs)))
            self.ok("%s -> %s: selector, port, job name"
                    % (name_of(sm), ", ".join(name_of(s) for s in matched)))

    def check_scale_targets(self):
        for hpa in self.of_kind("HorizontalPodAutoscaler"):
            ref = dig(hpa, "spec", "scaleTargetRef") or {}
            if not any(o.get("kind") == ref.get("kind") and
                       dig(o, "metadata", "name") == ref.get("name") and
                       ns_of(o) == ns_of(hpa) for o in self.objects):
                self.error(hpa, "spec.scaleTargetRef",
                           "%s %s does not exist" % (ref.get("kind"), ref.get("name")))
            else:
                self.ok("%s -> %s %s" % (name_of(hpa), ref.get("kind"), ref.get("name")))
        for pdb in self.of_kind("PodDisruptionBudget"):
            selector = dig(pdb, "spec", "selector")
            if not any(ns_of(w) == ns_of(pdb) and
                       labels_match(selector, pod_template(w)[0].get("labels"))
                       for w in self.of_kind("Deployment", "StatefulSet")):
                self.error(pdb, "spec.selector", "%s selects no workload's pods" % selector)

    def check_claims(self):
        claims = {(ns_of(p), dig(p, "metadata", "name"))
                  for p in self.of_kind("PersistentVolumeClaim")}
        for obj in self.objects:
            tpl = pod_template(obj)
            if not tpl:
                continue
            for v in tpl[1].get("volumes") or []:
                claim = dig(v, "persistentVolumeClaim", "claimName")
                if claim and (ns_of(obj), claim) not in claims:
                    self.error(obj, "%s.volumes[%s].persistentVolumeClaim.claimName"
                               % (tpl[2], v.get("name")),
                               "PersistentVolumeClaim %s is not defined" % claim)
                elif claim:
                    self.ok("%s: claim %s exists" % (name_of(obj), claim))

    # The trainer publishes into the directory the servers poll.
    def check_trainer_publish(self):
        repos = set()
        for obj in self.of_kind("Deployment", "StatefulSet"):
            _, pod, _ = pod_template(obj)
            for f, c in all_containers(pod):
                if f == "containers" and is_server(c):
                    where = resolve_path(pod, c, parse_flags(c)["model-repository"])
                    if where and where[0] == "pvc":
                        repos.add((ns_of(obj), where[1], where[2]))
        for obj in self.of_kind("Job", "CronJob"):
            _, pod, path = pod_template(obj)
            for f, c in all_containers(pod):
                if not is_trainer(c):
                    continue
                flags = parse_flags(c)
                field = "%s.%s[%s].args --publish_dir" % (path, f, c.get("name"))
                if "publish-dir" not in flags:
                    self.error(obj, field, "missing: publish to the shared repository "
                               "(--publish_server reaches one replica only)")
                    continue
                where = resolve_path(pod, c, flags["publish-dir"])
                if not where or where[0] != "pvc":
                    self.error(obj, field, "%s is not on a mounted PersistentVolumeClaim"
                               % flags["publish-dir"])
                    continue
                target = (ns_of(obj), where[1], where[2])
                if repos and target not in repos:
                    self.error(obj, field, "publishes to claim %s path %r, but the servers "
                               "read %s" % (where[1], where[2],
                                            sorted("%s:%s" % r[1:] for r in repos)))
                else:
                    self.ok("%s: publishes to claim %s path %r" % (name_of(obj), where[1], where[2]))

    def check_prometheus_rules(self):
        rules = self.of_kind("PrometheusRule")
        if not rules:
            return
        if not self.alerts_path or not os.path.exists(self.alerts_path):
            self.notes.append("SKIPPED PrometheusRule sync: %s does not exist yet"
                              % self.alerts_path)
            return
        with open(self.alerts_path, encoding="utf-8") as f:
            alerts = yaml.safe_load(f)
        for rule in rules:
            if rule.get("spec") == alerts:
                self.ok("%s: spec equals alerts.yml" % name_of(rule))
            elif squeeze(rule.get("spec")) == squeeze(alerts):
                # kustomize (go-yaml) reads a folded `>` scalar with
                # more-indented lines with an extra line break; PromQL does
                # not care, the raw file check above is exact.
                self.ok("%s: spec equals alerts.yml up to whitespace" % name_of(rule))
                self.notes.append("%s: the renderer changed whitespace inside folded (>) "
                                  "scalars of the rules; use | for multi-line expressions "
                                  "in alerts.yml to keep them byte-identical" % name_of(rule))
            else:
                self.error(rule, "spec", "differs from %s: run "
                           "deploy/monitoring/gen-prometheusrule.sh" % self.alerts_path)

    def check_kserve(self):
        runtimes = [rt for rt in self.of_kind("ClusterServingRuntime", "ServingRuntime")
                    if not dig(rt, "spec", "multiModel", default=False)]
        for rt in runtimes:
            protos = dig(rt, "spec", "protocolVersions", default=[])
            if "grpc-v2" not in protos:
                self.error(rt, "spec.protocolVersions", "must list grpc-v2")
            for p in ("v1", "v2"):
                if p in protos:
                    self.error(rt, "spec.protocolVersions",
                               "%s is an HTTP protocol; flexor_server serves gRPC only" % p)
            for c in dig(rt, "spec", "containers", default=[]):
                field = "spec.containers[%s]" % c.get("name")
                flags = parse_flags(c)
                if "/mnt/models" not in flags.get("model-repository", ""):
                    self.error(rt, field + ".args",
                               "--model-repository must be /mnt/models (where KServe puts the storageUri)")
                grpc_port = int(flags.get("grpc-port", DEFAULT_GRPC_PORT))
                ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
                if ports.get("h2c") != grpc_port:
                    self.error(rt, field + ".ports",
                               "the gRPC port %d must be declared with name h2c (KServe/Knative "
                               "gRPC convention), got %s" % (grpc_port, ports))
            self.ok("%s: grpc-v2, /mnt/models, h2c" % name_of(rt))
        formats = {(dig(f, "name"), p) for rt in runtimes
                   for f in dig(rt, "spec", "supportedModelFormats", default=[])
                   for p in dig(rt, "spec", "protocolVersions", default=[])}
        for isvc in self.of_kind("InferenceService"):
            if dig(isvc, "metadata", "annotations", default={}).get(
                    "serving.kserve.io/deploymentMode") == "ModelMesh":
                continue  # check_modelmesh
            model = dig(isvc, "spec", "predictor", "model") or {}
            fmt = dig(model, "modelFormat", "name")
            proto = model.get("protocolVersion", "v1")
            if runtimes and (fmt, proto) not in formats:
                self.error(isvc, "spec.predictor.model",
                           "no runtime here serves format %s with protocol %s" % (fmt, proto))
            uri = model.get("storageUri", "")
            if uri.startswith("pvc://"):
                claim = uri[len("pvc://"):].split("/")[0]
                if claim not in {dig(p, "metadata", "name")
                                 for p in self.of_kind("PersistentVolumeClaim")}:
                    self.error(isvc, "spec.predictor.model.storageUri",
                               "claim %s is not defined in deploy/k8s" % claim)
            self.ok("%s: format %s, protocol %s, %s" % (name_of(isvc), fmt, proto, uri))

    # ModelMesh (multiModel) runtimes: the SPI is on, explicit mode, model
    # paths under the puller's /models, both endpoints on the gRPC port, a
    # repository volume that is mounted, loopback (the admin RPCs are open).
    def check_modelmesh(self):
        runtimes = [rt for rt in self.of_kind("ClusterServingRuntime", "ServingRuntime")
                    if dig(rt, "spec", "multiModel", default=False)]
        for rt in runtimes:
            for c in dig(rt, "spec", "containers", default=[]):
                field = "spec.containers[%s]" % c.get("name")
                flags = parse_flags(c)
                if "modelmesh" not in flags:
                    self.error(rt, field + ".args", "multiModel needs --modelmesh")
                if flags.get("model-control-mode") != "explicit":
                    self.error(rt, field + ".args --model-control-mode",
                               "--modelmesh needs explicit")
                if flags.get("modelmesh-model-root", "/models") != "/models":
                    self.error(rt, field + ".args --modelmesh-model-root",
                               "must be /models (where ModelMesh's puller puts models)")
                if flags.get("address") != "127.0.0.1":
                    self.error(rt, field + ".args --address",
                               "must be 127.0.0.1: the SPI and admin RPCs carry no token")
                port = int(flags.get("grpc-port", DEFAULT_GRPC_PORT))
                for key in ("grpcEndpoint", "grpcDataEndpoint"):
                    if dig(rt, "spec", key) != "port:%d" % port:
                        self.error(rt, "spec." + key, "must be port:%d (--grpc-port)" % port)
                repo = flags.get("model-repository", "")
                mounts = [m.get("mountPath") for m in c.get("volumeMounts") or []]
                if repo not in mounts:
                    self.error(rt, field + ".volumeMounts",
                               "--model-repository=%s is not a mounted volume "
                               "(flexor_server writes loaded models there)" % repo)
                limit = cpu_cores(dig(c, "resources", "limits", "cpu"))
                threads = flags.get("threads")
                if limit is None or threads is None or int(threads) != math.ceil(limit):
                    self.error(rt, field + ".args --threads",
                               "--threads=%s must equal the CPU limit rounded up" % threads)
            self.ok("%s: --modelmesh, explicit, /models, endpoints" % name_of(rt))
        names = {dig(rt, "metadata", "name") for rt in runtimes}
        for isvc in self.of_kind("InferenceService"):
            if dig(isvc, "metadata", "annotations", default={}).get(
                    "serving.kserve.io/deploymentMode") != "ModelMesh":
                continue
            model = dig(isvc, "spec", "predictor", "model") or {}
            if dig(model, "modelFormat", "name") != "flexor" or \
                    model.get("runtime") not in names:
                self.error(isvc, "spec.predictor.model",
                           "must name modelFormat flexor and a ModelMesh runtime here (%s)"
                           % sorted(names))
            self.ok("%s: ModelMesh, runtime %s" % (name_of(isvc), model.get("runtime")))


# ---------------------------------------------------------------- inputs

def load_files(paths):
    objects = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if isinstance(doc, dict) and doc.get("kind") and \
                        doc.get("kind") != "Kustomization":
                    objects.append(doc)
    return objects


def raw_files(repo):
    files = []
    for d in ("deploy/k8s/base", "deploy/k8s/kserve", "deploy/k8s/modelmesh",
              "deploy/k8s/tools"):
        files += sorted(f for f in glob.glob(os.path.join(repo, d, "*.yaml"))
                        if os.path.basename(f) != "kustomization.yaml")
    for f in ("servicemonitor.yaml", "prometheusrule.yaml"):
        path = os.path.join(repo, "deploy/monitoring", f)
        if os.path.exists(path):
            files.append(path)
    return files


def renderer_command(choice):
    if choice in ("auto", "kubectl") and shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if choice in ("auto", "kustomize") and shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def render(command, directory):
    result = subprocess.run(command + [directory], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError("%s %s failed:\n%s" % (" ".join(command), directory,
                                                  result.stderr.strip()))
    return [d for d in yaml.safe_load_all(result.stdout) if isinstance(d, dict)]


def report(checker):
    for line in checker.checked:
        print("  ok   %s" % line)
    for line in checker.notes:
        print("  NOTE %s" % line)
    for line in checker.errors:
        print("  FAIL %s" % line)


# ---------------------------------------------------------------- self-test

def find(objects, kind, name):
    for o in objects:
        if o.get("kind") == kind and dig(o, "metadata", "name") == name:
            return o
    raise KeyError("%s %s not in the raw manifests" % (kind, name))


def server_container(objects):
    dep = find(objects, "Deployment", "flexor-server")
    return next(c for c in dep["spec"]["template"]["spec"]["containers"] if is_server(c))


def set_flag(container, flag, value):
    args = [a for a in container["args"] if not
            a.replace("_", "-").startswith("--%s=" % flag)]
    if value is not None:
        args.append("--%s=%s" % (flag, value))
    container["args"] = args


def mutations(has_alerts):
    def dep(o):
        return find(o, "Deployment", "flexor-server")

    def trainer(o):
        cron = find(o, "CronJob", "flexor-trainer")
        return cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]

    def runtime(o):
        return find(o, "ClusterServingRuntime", "flexor")["spec"]["containers"][0]

    def mesh(o):
        return find(o, "ServingRuntime", "flexor-modelmesh")["spec"]["containers"][0]

    cases = [
        ("ModelMesh runtime without --modelmesh", "multiModel needs --modelmesh",
         lambda o: mesh(o).update(args=[a for a in mesh(o)["args"] if a != "--modelmesh"])),
        ("ModelMesh runtime on all addresses", "--address",
         lambda o: set_flag(mesh(o), "address", "0.0.0.0")),
        ("ModelMesh endpoint on another port", "spec.grpcEndpoint",
         lambda o: find(o, "ServingRuntime", "flexor-modelmesh")["spec"].update(
             grpcEndpoint="port:8085")),
        ("ModelMesh repository not mounted", "volumeMounts",
         lambda o: mesh(o).pop("volumeMounts")),
        ("Service selector broken", "selects no Deployment",
         lambda o: find(o, "Service", "flexor-server")["spec"].update(
             selector={"app.kubernetes.io/name": "typo"})),
        ("server resources removed", "resources.limits",
         lambda o: server_container(o).pop("resources")),
        ("trainer runs as root", "runAsNonRoot",
         lambda o: find(o, "CronJob", "flexor-trainer")["spec"]["jobTemplate"]["spec"]
         ["template"]["spec"]["securityContext"].update(runAsUser=0)),
        ("liveness probe on an undeclared port", "livenessProbe.grpc.port",
         lambda o: server_container(o)["livenessProbe"]["grpc"].update(port=9999)),
        ("readiness probe over HTTP", "must be a gRPC probe",
         lambda o: server_container(o).update(
             readinessProbe={"httpGet": {"path": "/", "port": 8002}})),
        ("startup probe on readiness", "startupProbe.grpc.service",
         lambda o: server_container(o)["startupProbe"]["grpc"].update(
             service="inference.GRPCInferenceService")),
        ("readiness on the liveness service", "readinessProbe.grpc.service",
         lambda o: server_container(o)["readinessProbe"]["grpc"].pop("service")),
        ("Service targetPort renamed", "targetPort",
         lambda o: find(o, "Service", "flexor-server")["spec"]["ports"][1].update(
             targetPort="prometheus")),
        ("ServiceMonitor port unknown", "spec.endpoints.port",
         lambda o: find(o, "ServiceMonitor", "flexor-server")["spec"]["endpoints"][0].update(
             port="http-metrics")),
        ("ServiceMonitor selects nothing", "matches no Service",
         lambda o: find(o, "ServiceMonitor", "flexor-server")["spec"].update(
             selector={"matchLabels": {"app": "flexor"}})),
        ("HPA targets a missing Deployment", "scaleTargetRef",
         lambda o: find(o, "HorizontalPodAutoscaler", "flexor-server")["spec"]
         ["scaleTargetRef"].update(name="flexor")),
        ("HPA and a fixed replica count", "spec.replicas",
         lambda o: dep(o)["spec"].update(replicas=3)),
        ("volume names a missing claim", "is not defined",
         lambda o: dep(o)["spec"]["template"]["spec"]["volumes"][0]
         ["persistentVolumeClaim"].update(claimName="models")),
        ("termination grace too short", "terminationGracePeriodSeconds",
         lambda o: dep(o)["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=30)),
        ("--threads above the CPU limit", "--threads",
         lambda o: set_flag(server_container(o), "threads", 8)),
        ("--grpc-port without its containerPort", "--grpc-port",
         lambda o: set_flag(server_container(o), "grpc-port", 9001)),
        ("explicit mode with an autoscaler", "--model-control-mode",
         lambda o: set_flag(server_container(o), "model-control-mode", "explicit")),
        ("trainer publishes into its /tmp", "--publish_dir",
         lambda o: set_flag(trainer(o), "publish-dir", "/tmp/models")),
        ("trainer publishes beside the repository", "but the servers read",
         lambda o: set_flag(trainer(o), "publish-dir", "/var/lib/flexor/other")),
        ("KServe runtime without /mnt/models", "/mnt/models",
         lambda o: set_flag(runtime(o), "model-repository", "/models")),
        ("KServe gRPC port not named h2c", "h2c",
         lambda o: runtime(o)["ports"][0].update(name="grpc")),
        ("KServe runtime claims HTTP v2", "HTTP protocol",
         lambda o: find(o, "ClusterServingRuntime", "flexor")["spec"]
         ["protocolVersions"].append("v2")),
    ]
    if has_alerts:
        cases.append(("PrometheusRule out of sync", "differs from",
                      lambda o: find(o, "PrometheusRule", "flexor-server")["spec"]
                      ["groups"].pop()))
    return cases


def selftest(repo, alerts):
    base_objects = load_files(raw_files(repo))
    baseline = Checker(copy.deepcopy(base_objects), "raw", alerts).run()
    if baseline:
        print("selftest: the unmodified manifests already fail:")
        for e in baseline:
            print("  " + e)
        return 1
    failures = 0
    for title, expected, mutate in mutations(os.path.exists(alerts)):
        objects = copy.deepcopy(base_objects)
        mutate(objects)
        errors = Checker(objects, "raw", alerts).run()
        hits = [e for e in errors if expected in e]
        if hits:
            print("  caught  %-42s %s" % (title, hits[0]))
        else:
            failures += 1
            print("  MISSED  %-42s expected an error containing %r, got %s"
                  % (title, expected, errors or "none"))
    print("selftest: %d mutation(s) missed" % failures if failures else
          "selftest: every mutation was reported")
    return 1 if failures else 0


# ---------------------------------------------------------------- main

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", default=os.path.normpath(os.path.join(here, "..", "..")))
    parser.add_argument("--renderer", default="auto",
                        choices=("auto", "kubectl", "kustomize", "none"))
    parser.add_argument("--selftest", action="store_true")
    args = parser.parse_args()
    repo = args.repo
    alerts = os.path.join(repo, "deploy/monitoring/alerts.yml")

    if args.selftest:
        return selftest(repo, alerts)

    failed = False
    files = raw_files(repo)
    checker = Checker(load_files(files), "raw", alerts)
    checker.run()
    print("raw manifests (%d files):" % len(files))
    report(checker)
    failed |= bool(checker.errors)

    command = renderer_command(args.renderer)
    overlays = sorted(glob.glob(os.path.join(repo, "deploy/k8s/overlays/*/kustomization.yaml")))
    if command is None:
        print("rendered overlays: SKIPPED (%s)" % ("--renderer none" if args.renderer == "none"
                                                  else "no %s on PATH" % (
                                                      "kubectl or kustomize"
                                                      if args.renderer == "auto"
                                                      else args.renderer)))
    for kfile in overlays if command else []:
        directory = os.path.dirname(kfile)
        label = os.path.relpath(directory, repo)
        try:
            objects = render(command, directory)
        except RuntimeError as e:
            print("%s: FAIL %s" % (label, e))
            failed = True
            continue
        checker = Checker(objects, label, alerts)
        checker.run()
        print("%s (rendered with %s, %d objects):" % (label, " ".join(command), len(objects)))
        report(checker)
        failed |= bool(checker.errors)
    print("check_manifests: %s" % ("FAILED" if failed else "all checks passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
