"""test_k8s.py - every kustomization of deploy/k8s (the base and each
overlay) renders with kustomize, every Kubernetes object in it passes
kubernetes-validate --strict (the bundled schemas of Kubernetes 1.37, and
of the minimum version docs/deployment.md states; an unknown field is an
error), every custom resource passes the schema shipped
in deploy/k8s/schemas (a kind without one fails), and the objects say what
docs/deployment.md promises:

- a StatefulSet whose pods run ingest and match on one volumeClaimTemplate
  volume, with a shared process namespace, liveness /healthz, readiness
  /startedz for ingest (caught up once) and /readyz for match, a
  startupProbe of at least 5 minutes for match, memory requests
  and limits, and the restricted security context (non-root, read-only root,
  no privilege escalation, every capability dropped, RuntimeDefault seccomp);
- the ingest consumer group derived from the namespace and the pod name, in
  both containers, and match's events group from the namespace, so that no
  two overlays share a group;
- a row in README.md's options table for every option the binaries take
  from a variable;
- only LUNAMATCH_* variables the binaries know, each container's own (env)
  ones taken by its program, and values the program accepts (its
  configuration checks, run on the image's and the manifests' environment);
- mutual TLS on the RPC port from the Secret where the RPC URL is tls+tcp://;
- a preStop pause in match (it serves on while the pod's removal from the
  Service reaches every node) and a termination grace period longer than
  each container's pause and stop bound (a container still stopping when
  it ends is killed);
- a headless Service that publishes ready pods only and a ClusterIP RPC
  Service on the match port, a
  PodDisruptionBudget, an HPA scaling the StatefulSet on the match
  container's CPU (not the pod's: ingest's load is the same on every
  replica), a NetworkPolicy that
  admits RPC from labelled clients only, admits exactly the ports the
  containers listen on, and lets out Kafka and DNS only, a
  ServiceMonitor on ports the Service has, and a KafkaTopic for each topic
  the ConfigMap names, with the store's tombstone retention above the
  compacted topics' max.compaction.lag.ms + delete.retention.ms, and
  ingest's store max age below their delete.retention.ms;
- a PrometheusRule whose alerts each have a runbook entry in
  docs/deployment.md, use only metrics the services register, and read
  counts since start through their change over a window; together they
  watch every metric docs/operations.md names among the alerts worth
  having; the not-loaded alert fires within match's smallest startup
  budget.

A deliberately misspelt field must fail both validators.
"""
import copy
import glob
import json
import os
import re
import tempfile

import jsonschema
import yaml

from deploylib import (BIN, K8S, SRC, check, config_error, container_env, dockerfile_stages, find,
                       finish, image_env, known_variables, overlays, program_default,
                       program_variables, render, run, stop_bounds_ms, tool)

schemas = {}
for f in glob.glob(os.path.join(K8S, "schemas", "*.json")):
    s = json.load(open(f))
    key = (s["properties"]["kind"]["const"], s["properties"]["apiVersion"]["const"])
    schemas[key] = s
BUILTIN_GROUPS = ("", "apps", "policy", "autoscaling", "networking.k8s.io")


def is_builtin(o):
    group = o["apiVersion"].rpartition("/")[0]
    return group in BUILTIN_GROUPS


def validate_builtin(objs, label, version=None):
    """kubernetes-validate --strict over objs, with the schemas of version
    (default: the newest it ships); returns (ok, output)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(objs, f)
    kv = ["--kubernetes-version", version] if version else []
    p = run([tool("kubernetes-validate"), "--strict", "--quiet", "--no-warn", *kv, f.name])
    os.unlink(f.name)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def validate_crd(o):
    """The repo's schema for o's kind; returns an error text or None."""
    s = schemas.get((o["kind"], o["apiVersion"]))
    if s is None:
        return f"no schema in deploy/k8s/schemas for {o['kind']} {o['apiVersion']}"
    try:
        jsonschema.validate(o, s)
    except jsonschema.ValidationError as e:
        return f"{o['kind']}/{o['metadata']['name']}: {e.message}"
    return None


# The oldest Kubernetes docs/deployment.md promises the manifests run on:
# they are validated against its schemas as well.
min_k8s = re.search(r"\*\*Kubernetes (1\.\d+) or later\.\*\*",
                    open(os.path.join(SRC, "docs", "deployment.md")).read())
check(min_k8s is not None, "docs/deployment.md states no minimum Kubernetes version")

variables = known_variables()
check(len(variables) > 20, "could not read the variables from the binaries' --help")
# README.md's options table, which the manifests' settings are chosen
# from, has a row for every option the services and the CLI take from a
# variable (the flag column spells each flag out in full).
flags = set()
for b in ("lunamatch-ingest", "lunamatch-match", "lunamatch"):
    out = run([os.path.join(BIN, b), "--help"]).stdout
    flags |= set(re.findall(r"^\s+(--[a-z0-9-]+)\b.*\n\s+LUNAMATCH_[A-Z_]+", out, re.M))
check(len(flags) > 20, "could not read the flags from the binaries' --help")
readme_flags = set()
for line in open(os.path.join(SRC, "README.md")).read().splitlines():
    cols = line.split("|")
    if line.startswith("| LUNAMATCH_") and len(cols) > 3:
        readme_flags |= set(re.findall(r"--[a-z0-9-]+", cols[2]))
for f in sorted(flags - readme_flags):
    check(False, f"README.md's options table has no row for {f}")
image = image_env(dockerfile_stages()[-1])
stop_ms = stop_bounds_ms()
startup_budgets = []  # seconds: match's startupProbe of each overlay
groups = {}  # label: the consumer groups its pod lunamatch-0 joins

for path in overlays():
    label = os.path.relpath(path, K8S)
    try:
        objs = render(path)
    except RuntimeError as e:
        check(False, str(e))
        continue
    builtin = [o for o in objs if is_builtin(o)]
    ok, out = validate_builtin(builtin, label)
    check(ok, f"{label}: kubernetes-validate: {out}")
    if min_k8s:
        ok, out = validate_builtin(builtin, label, min_k8s.group(1))
        check(ok, f"{label}: kubernetes-validate (Kubernetes {min_k8s.group(1)}): {out}")
    for o in objs:
        if not is_builtin(o):
            err = validate_crd(o)
            check(err is None, f"{label}: {err}")

    sts = find(objs, "StatefulSet")
    if not check(len(sts) == 1, f"{label}: one StatefulSet expected"):
        continue
    sts = sts[0]
    pod = sts["spec"]["template"]["spec"]
    names = [c["name"] for c in pod["containers"]]
    check(sorted(names) == ["ingest", "match"], f"{label}: containers {names}")
    check(pod.get("shareProcessNamespace") is True, f"{label}: shareProcessNamespace not set")
    vct = [v["metadata"]["name"] for v in sts["spec"].get("volumeClaimTemplates", [])]
    check(vct == ["data"], f"{label}: volumeClaimTemplates {vct}")
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0,
          f"{label}: pod must run as a non-root uid")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{label}: seccomp RuntimeDefault")
    check(pod.get("automountServiceAccountToken") is False, f"{label}: service account token mounted")
    # Service links would add <SERVICE>_* variables, LUNAMATCH_RPC_* for
    # lunamatch-rpc, beside the services' own LUNAMATCH_* configuration.
    check(pod.get("enableServiceLinks") is False, f"{label}: service links enabled")
    # A deleted pod leaves the Services' endpoints at once, but every node's
    # proxy learns it a moment later and sends it new connections meanwhile:
    # match must go on serving (a preStop pause) until that has passed, not
    # close its listener at the first instant. The kubelet kills what still
    # runs when the grace period ends, counted from the start of the pause.
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pause_ms = {}
    for c in pod["containers"]:
        cmd = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pause_ms[c["name"]] = int(cmd[1]) * 1000 if len(cmd) == 2 and cmd[0] == "sleep" and \
            cmd[1].isdigit() else 0
    check(pause_ms.get("match", 0) >= 3000,
          f"{label}/match: no preStop pause of at least 3 s before the drain (endpoint removal)")
    for n, ms in sorted(stop_ms.items()):
        check(grace * 1000 > pause_ms.get(n, 0) + ms,
              f"{label}: terminationGracePeriodSeconds {grace} does not cover {n}'s preStop "
              f"pause of {pause_ms.get(n, 0)} ms and stop bound of {ms} ms")
    mounts = {}
    for c in pod["containers"]:
        n = c["name"]
        sc = c.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True, f"{label}/{n}: readOnlyRootFilesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"{label}/{n}: allowPrivilegeEscalation")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{label}/{n}: capabilities drop ALL")
        check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", f"{label}/{n}: liveness /healthz")
        # ingest: caught up once (/startedz), so that a broker outage does
        # not take the pod's match out of the Service; match: /readyz.
        want = "/startedz" if n == "ingest" else "/readyz"
        check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == want, f"{label}/{n}: readiness {want}")
        res = c.get("resources", {})
        check("memory" in res.get("requests", {}) and "cpu" in res.get("requests", {}) and
              "memory" in res.get("limits", {}), f"{label}/{n}: cpu/memory requests and a memory limit")
        mounts[n] = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        env = container_env(objs, n, "lunamatch-0")
        for k in env:
            if k.startswith("LUNAMATCH_"):
                check(k in variables, f"{label}/{n}: {k} is not a variable lunamatch knows")
        # A variable set for one container only must be one its program
        # takes: the others are ignored without a word.
        takes = program_variables(f"lunamatch-{n}")
        for e in c.get("env", []):
            if e["name"].startswith("LUNAMATCH_"):
                check(e["name"] in takes, f"{label}/{n}: sets {e['name']}, which lunamatch-{n} ignores")
        err = config_error(f"lunamatch-{n}", dict(image, **env))
        check(err is None, f"{label}/{n}: lunamatch-{n} refuses the configuration: {err}")
        check(env.get("LUNAMATCH_DATA_DIR") == mounts[n].get("data"),
              f"{label}/{n}: LUNAMATCH_DATA_DIR is not the data volume's mount")
        # Both: ingest consumes under the pod's group, match reads that
        # group's committed offsets (event ownership). The namespace is in
        # it: two deployments on one Kafka cluster have pods of the same
        # names, and two ingests in one group each get only some partitions.
        ns = sts["metadata"].get("namespace", "default")
        check(env.get("LUNAMATCH_GROUP_ID") == f"lunamatch-ingest-{ns}-lunamatch-0",
              f"{label}/{n}: ingest group id not derived from the namespace and the pod name: "
              f"{env.get('LUNAMATCH_GROUP_ID')}")
        groups.setdefault(label, set()).add(env.get("LUNAMATCH_GROUP_ID"))
        if n == "match":
            # The events group is shared by the replicas of one deployment
            # only: another deployment in it would take its partitions.
            check(env.get("LUNAMATCH_EVENTS_GROUP_ID") == f"lunamatch-match-events-{ns}",
                  f"{label}/match: events group id not derived from the namespace: "
                  f"{env.get('LUNAMATCH_EVENTS_GROUP_ID')}")
            groups[label].add(env.get("LUNAMATCH_EVENTS_GROUP_ID"))
        if n == "match":
            sp = c.get("startupProbe", {})
            budget = sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3)
            startup_budgets.append(budget)
            check(budget >= 300,
                  f"{label}: match startupProbe allows less than 5 minutes for the snapshot load")
            if env.get("LUNAMATCH_RPC_URL", "").startswith("tls+tcp://"):
                tls = {v["name"]: v for v in pod.get("volumes", [])}.get("tls", {})
                sec = tls.get("secret", {}).get("secretName")
                check(sec is not None, f"{label}: TLS RPC without a Secret volume")
                d = mounts[n].get("tls", "")
                for var, f in (("LUNAMATCH_TLS_CERT", "tls.crt"), ("LUNAMATCH_TLS_KEY", "tls.key"),
                               ("LUNAMATCH_TLS_CA", "ca.crt")):
                    check(env.get(var) == f"{d}/{f}", f"{label}: {var} is not {d}/{f} from the Secret")
            else:
                check(label.endswith("dev"), f"{label}: RPC without TLS outside the dev overlay")
    check(mounts.get("ingest", {}).get("data") == mounts.get("match", {}).get("data"),
          f"{label}: ingest and match do not share the data volume at one path")

    svcs = find(objs, "Service")
    headless = [s for s in svcs if s["spec"].get("clusterIP") == "None"]
    check(len(headless) == 1 and headless[0]["metadata"]["name"] == sts["spec"]["serviceName"],
          f"{label}: the StatefulSet's serviceName is not the headless Service")
    # A pod that is not ready (ingest still filling its store) answers
    # queries with part of the records: its name must not resolve.
    check(all(not s["spec"].get("publishNotReadyAddresses", False) for s in headless),
          f"{label}: the headless Service publishes pods that are not ready")
    rpc = [s for s in svcs if s["spec"].get("clusterIP") != "None"]
    check(len(rpc) == 1 and [p["port"] for p in rpc[0]["spec"]["ports"]] == [7700],
          f"{label}: one ClusterIP Service for the RPC port 7700 expected")
    pdb = find(objs, "PodDisruptionBudget")
    check(len(pdb) == 1, f"{label}: PodDisruptionBudget missing")
    # A pod the scheduler cannot place counts as unavailable to the
    # disruption budget, which then allows no eviction: every node drain
    # blocks. The HPA may add more pods than the cluster has eligible nodes
    # or zones, so the pods may prefer to spread but must never require a
    # node or zone without another of them.
    own = sts["spec"]["template"]["metadata"]["labels"]

    def selects_own(sel):
        ml = (sel or {}).get("matchLabels", {})
        return bool(ml) and all(own.get(k) == v for k, v in ml.items())

    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    for t in anti.get("requiredDuringSchedulingIgnoredDuringExecution", []):
        check(not selects_own(t.get("labelSelector")),
              f"{label}: required anti-affinity over {t.get('topologyKey')}: pods beyond the "
              "eligible nodes stay Pending and the PodDisruptionBudget then blocks every drain")
    for t in pod.get("topologySpreadConstraints", []):
        check(not selects_own(t.get("labelSelector")) or t.get("whenUnsatisfiable") == "ScheduleAnyway",
              f"{label}: spread over {t.get('topologyKey')} with whenUnsatisfiable "
              f"{t.get('whenUnsatisfiable', 'DoNotSchedule')}: pods it cannot place stay Pending "
              "and the PodDisruptionBudget then blocks every drain")
    if label.endswith("prod"):
        spread = [t.get("podAffinityTerm", {}) for t in
                  anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])] + \
            pod.get("topologySpreadConstraints", [])
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
            check(any(t.get("topologyKey") == key and selects_own(t.get("labelSelector"))
                      for t in spread), f"{label}: the pods are not spread over {key}")
    hpa = find(objs, "HorizontalPodAutoscaler")
    check(len(hpa) == 1 and hpa[0]["spec"]["scaleTargetRef"]["name"] == sts["metadata"]["name"],
          f"{label}: HPA does not scale the StatefulSet")
    # Replicas share the queries, not the writes: every replica's ingest
    # reads every partition and match's follower applies every change, so
    # the pod's CPU (ingest's above all) does not fall as replicas are
    # added, and scaling on it adds replicas up to the maximum at every
    # bulk re-publish. The HPA scales on match's CPU only.
    for h in hpa:
        for m in h["spec"].get("metrics", []):
            check(m.get("type") != "Resource",
                  f"{label}: HPA scales on the whole pod's {m.get('resource', {}).get('name')}, "
                  "which ingest's per-replica write load keeps up however many replicas run")
            if m.get("type") == "ContainerResource":
                check(m["containerResource"].get("container") == "match",
                      f"{label}: HPA scales on container {m['containerResource'].get('container')}, "
                      "not match (the one the queries load)")
        check(any(m.get("type") == "ContainerResource" for m in h["spec"].get("metrics", [])),
              f"{label}: HPA does not scale on the match container's CPU")
    # The autoscaler owns the replica count: a count in the manifest would
    # be applied again at every `kubectl apply`, resetting a scaled-out set.
    check("replicas" not in sts["spec"],
          f"{label}: the StatefulSet sets replicas although an HPA scales it")
    # A volume kept through a scale-down keeps the events and decisions
    # queued on it during a broker outage; ingest refills a store that
    # comes back older than the topics keep their tombstones.
    check(sts["spec"].get("persistentVolumeClaimRetentionPolicy", {}).get("whenScaled") == "Retain",
          f"{label}: volumes of pods removed by scaling down are deleted")
    np = find(objs, "NetworkPolicy")
    if check(len(np) == 1, f"{label}: NetworkPolicy missing"):
        spec = np[0]["spec"]
        check(sorted(spec.get("policyTypes", [])) == ["Egress", "Ingress"], f"{label}: policy types")
        rpc_rules = [r for r in spec.get("ingress", []) if any(p.get("port") == 7700 for p in r.get("ports", []))]
        check(len(rpc_rules) == 1 and all("podSelector" in f and f["podSelector"].get("matchLabels")
                                          for f in rpc_rules[0].get("from", [{}])),
              f"{label}: RPC must be admitted from labelled pods only")
        iports = {p.get("port") for r in spec.get("ingress", []) for p in r.get("ports", [])}
        cports = {p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])}
        check(iports == cports, f"{label}: NetworkPolicy admits ports {sorted(iports, key=str)}, "
              f"the containers listen on {sorted(cports)}")
        eports = sorted({p["port"] for r in spec.get("egress", []) for p in r.get("ports", [])})
        check(eports == [53, 9092], f"{label}: egress ports {eports}, expected DNS and Kafka")
        check(all(r.get("to") for r in spec.get("egress", [])), f"{label}: an egress rule open to everyone")
    sm = find(objs, "ServiceMonitor")
    if check(len(sm) == 1, f"{label}: ServiceMonitor missing"):
        hp = {p["name"] for p in headless[0]["spec"]["ports"]} if headless else set()
        for ep in sm[0]["spec"]["endpoints"]:
            check(ep["port"] in hp, f"{label}: ServiceMonitor port {ep['port']} not on the Service")
    cm = container_env(objs, "match", "lunamatch-0")
    topics = {cm[k] for k in cm if k.startswith("LUNAMATCH_TOPIC_")}
    kt = {o["spec"]["topicName"] for o in find(objs, "KafkaTopic")}
    check(len(topics) == 5 and kt == topics, f"{label}: KafkaTopics {sorted(kt)} != configured {sorted(topics)}")
    # A deletion must outlive the topics' compaction: a tombstone trimmed
    # from the store before the topic drops the deleted record lets a new
    # replica, or a rewind, read the record back as live (docs/store.md).
    ienv = container_env(objs, "ingest", "lunamatch-0")
    keep_ms = int(dict(image, **ienv).get("LUNAMATCH_TOMBSTONE_RETENTION_S", "2592000")) * 1000
    for o in find(objs, "KafkaTopic"):
        cfg = o["spec"].get("config", {})
        if "compact" in str(cfg.get("cleanup.policy", "")):
            lag = int(cfg.get("max.compaction.lag.ms", 2**63 - 1)) + int(cfg.get("delete.retention.ms", 86400000))
            check(keep_ms > lag, f"{label}: tombstone retention {keep_ms} ms is not above "
                  f"{o['spec']['topicName']}'s compaction lag + delete retention {lag} ms")
    # A store away for longer than the compacted topics keep a tombstone
    # must be refilled: ingest's max age of a store must be below their
    # delete retention, leaving time for the catch-up after a start
    # (docs/ingest.md, "Stale stores and refills").
    age_ms = int(dict(image, **ienv).get(
        "LUNAMATCH_STORE_MAX_AGE_S",
        program_default("lunamatch-ingest", "LUNAMATCH_STORE_MAX_AGE_S"))) * 1000
    for o in find(objs, "KafkaTopic"):
        cfg = o["spec"].get("config", {})
        if "compact" in str(cfg.get("cleanup.policy", "")):
            keep = int(cfg.get("delete.retention.ms", 86400000))
            check(age_ms < keep, f"{label}: store max age {age_ms} ms is not below "
                  f"{o['spec']['topicName']}'s delete retention {keep} ms")

# The overlays, deployed side by side on one Kafka cluster, share no
# consumer group.
ov = sorted(g for g in groups if g != "base")
for i, a in enumerate(ov):
    for b in ov[i + 1:]:
        check(not (groups[a] & groups[b]), f"{a} and {b} share consumer groups {sorted(groups[a] & groups[b])}")

# docs/deployment.md's table of the deploy tests names every custom
# resource kind deploy.k8s checks against deploy/k8s/schemas.
row = re.search(r"^\| `deploy\.k8s` \|(.*)$", open(os.path.join(SRC, "docs", "deployment.md")).read(), re.M)
if check(row is not None, "docs/deployment.md: no row for deploy.k8s in the table of tests"):
    for kind, _ in sorted(schemas):
        check(f"`{kind}`" in row.group(1),
              f"docs/deployment.md: the deploy.k8s row does not say {kind} is checked against its schema")

# The alerts: each has its runbook section in docs/deployment.md, and every
# lunamatch_* metric they use is one the services register.
exported = set()
for f in glob.glob(os.path.join(SRC, "services", "*", "*.c")) + glob.glob(os.path.join(SRC, "common", "src", "*.c")):
    exported |= set(re.findall(r'"(lunamatch_[a-z_]+)"', open(f).read()))
runbook = open(os.path.join(SRC, "docs", "deployment.md")).read()
rules = find(render(os.path.join(K8S, "base")), "PrometheusRule")
if check(len(rules) == 1, "base: PrometheusRule missing"):
    alerts = [r for g in rules[0]["spec"]["groups"] for r in g["rules"] if "alert" in r]
    check(len(alerts) >= 5, "fewer than 5 alerts")
    for a in alerts:
        check(f"**`{a['alert']}`" in runbook, f"alert {a['alert']} has no runbook entry in docs/deployment.md")
        for mo in re.finditer(r"\blunamatch_[a-z_]+", a["expr"]):
            m = mo.group(0)
            base = re.sub(r"_(bucket|sum|count)$", "", m)
            check(base in exported, f"alert {a['alert']}: metric {m} is not exported by the services")
            # A count since the process started only grows: compared bare
            # with a threshold, one event fires the alert until the pod
            # restarts. It must be read through its change over a window.
            if m.endswith("_total") or base != m:
                fn = re.search(r"(\w+)\s*\(\s*$", a["expr"][:mo.start()])
                check(fn is not None and fn.group(1) in ("rate", "irate", "increase", "delta"),
                      f"alert {a['alert']}: {m} counts since start, so it must be read through "
                      f"rate/increase over a window, not compared as it is")
    # A pod whose snapshot does not load is restarted at the end of its
    # startup budget, and the failed scrape starts an alert's "for" anew:
    # the not-loaded alert must fire within the smallest budget.
    dur = {"s": 1, "m": 60, "h": 3600}
    for a in alerts:
        if "lunamatch_index_loaded" in a["expr"]:
            fm = re.fullmatch(r"(\d+)([smh])", str(a.get("for", "0s")))
            secs = int(fm.group(1)) * dur[fm.group(2)] if fm else None
            check(secs is not None and startup_budgets and secs < min(startup_budgets),
                  f"alert {a['alert']}: for {a.get('for')} is not shorter than match's "
                  f"smallest startup budget ({min(startup_budgets or [0])} s): it cannot fire")
    # Every metric docs/operations.md names among the alerts worth having
    # is watched by one of them.
    ops = open(os.path.join(SRC, "docs", "operations.md")).read()
    worth = re.search(r"Alerts worth having:(.*?)\n\n", ops, re.S)
    if check(worth is not None, "docs/operations.md: no \"Alerts worth having\" paragraph"):
        used = {m for a in alerts for m in re.findall(r"\blunamatch_[a-z_]+", a["expr"])}
        for m in sorted(set(re.findall(r"\blunamatch_[a-z_]+", worth.group(1)))):
            check(m in used, f"no alert watches {m}, which docs/operations.md names as worth one")

# The validators can fail: a misspelt field in a built-in object and in a
# custom resource.
objs = render(os.path.join(K8S, "base"))
broken = copy.deepcopy([o for o in objs if is_builtin(o)])
find(broken, "StatefulSet")[0]["spec"]["replicaz"] = 1
ok, _ = validate_builtin(broken, "broken")
check(not ok, "kubernetes-validate accepted a StatefulSet with a misspelt field")
bad = dict(image, **container_env(objs, "ingest", "lunamatch-0"))
bad["LUNAMATCH_READER_LEASE_S"] = "30"
check(config_error("lunamatch-ingest", bad) is not None,
      "the configuration check accepted a reader lease below ingest's minimum")
kt = copy.deepcopy(find(objs, "KafkaTopic")[0])
kt["spec"]["partition"] = 3
check(validate_crd(kt) is not None, "the KafkaTopic schema accepted a misspelt field")

finish("deploy.k8s")
