"""test_compose.py - docker-compose.yml is valid for `docker-compose config`
(Debian's docker-compose) and wires what docs/deployment.md describes: an
apache/kafka broker in KRaft mode with a health check; a one-shot job that
creates the five topics the services are configured with (the defaults the
binaries print in --help), after the broker is healthy; ingest and match from
one image, sharing a named volume at their data directory and one process
namespace that a third service holds, with health checks and the RPC and HTTP ports published, and an
environment that each service's configuration checks accept (on top of the
image's); a stop grace period longer than each service's stop bound; the
store's tombstone retention above the compacted topics' compaction lag plus
delete retention, and ingest's store max age below their delete retention.

A broken copy of the file must fail `docker-compose config`.
"""
import os
import re
import shutil
import tempfile

import yaml

from deploylib import (BIN, SRC, check, config_error, dockerfile_stages, finish, image_env,
                       program_default, run, stop_bounds_ms)

dc = shutil.which("docker-compose")
if not check(dc is not None, "docker-compose is not installed (scripts/install-deps.sh installs it)"):
    finish("deploy.compose")
path = os.path.join(SRC, "docker-compose.yml")

p = run([dc, "-f", path, "config"])
check(p.returncode == 0, "docker-compose config: " + p.stderr.strip())
cfg = yaml.safe_load(p.stdout) if p.returncode == 0 else {"services": {}}
svc = cfg["services"]

with tempfile.TemporaryDirectory() as d:
    bad = os.path.join(d, "docker-compose.yml")
    open(bad, "w").write(open(path).read().replace("    healthcheck:", "    healthcheckz:", 1))
    check(run([dc, "-f", bad, "config", "-q"]).returncode != 0,
          "docker-compose config accepts a file with an unknown key")

for name in ("kafka", "kafka-topics", "ingest", "match"):
    check(name in svc, f"service {name} missing")
if all(n in svc for n in ("kafka", "kafka-topics", "ingest", "match")):
    k = svc["kafka"]
    check(k["image"].startswith("apache/kafka:"), "kafka is not the apache/kafka image")
    check(set(str(k["environment"].get("KAFKA_PROCESS_ROLES", "")).split(",")) == {"broker", "controller"},
          "kafka is not a KRaft broker+controller")
    check("healthcheck" in k, "kafka has no health check")

    t = svc["kafka-topics"]
    check(t["depends_on"]["kafka"]["condition"] == "service_healthy", "topics job does not wait for a healthy broker")
    script = " ".join(t.get("command", []))
    created = set(re.findall(r"--create\s.*?--topic\s+(\S+)", script))
    helptext = run([os.path.join(BIN, "lunamatch-ingest"), "--help"]).stdout + \
        run([os.path.join(BIN, "lunamatch-match"), "--help"]).stdout
    wanted = set(re.findall(r"LUNAMATCH_TOPIC_\w+, default (\S+)", helptext))
    check(len(wanted) == 5 and created == wanted, f"topics created {sorted(created)} != configured {sorted(wanted)}")
    # A deletion must outlive the topics' compaction (docs/store.md).
    keep_ms = int(svc["ingest"]["environment"].get("LUNAMATCH_TOMBSTONE_RETENTION_S", "2592000")) * 1000
    compacted = [ln for ln in script.split("\n") if "--create" in ln and "cleanup.policy=compact" in ln]
    check(len(compacted) == 2, f"{len(compacted)} compacted topics created, expected postings and profiles")
    for ln in compacted:
        tcfg = dict(re.findall(r"--config\s+([\w.]+)=(\S+)", ln))
        lag = int(tcfg.get("max.compaction.lag.ms", 2**63 - 1)) + int(tcfg.get("delete.retention.ms", 86400000))
        check(keep_ms > lag, f"tombstone retention {keep_ms} ms is not above a compacted topic's "
              f"compaction lag + delete retention {lag} ms: {ln.strip()}")
        # A store away for longer than the topic keeps a tombstone is
        # refilled, with time left for the catch-up after a start
        # (docs/ingest.md, "Stale stores and refills").
        age_ms = int(svc["ingest"]["environment"].get(
            "LUNAMATCH_STORE_MAX_AGE_S",
            program_default("lunamatch-ingest", "LUNAMATCH_STORE_MAX_AGE_S"))) * 1000
        keep = int(tcfg.get("delete.retention.ms", 86400000))
        check(age_ms < keep, f"store max age {age_ms} ms is not below a compacted topic's "
              f"delete retention {keep} ms: {ln.strip()}")

    i, m = svc["ingest"], svc["match"]
    check(i["image"] == m["image"], "ingest and match use different images")
    check(i["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully",
          "ingest does not wait for the topics")

    # docker-compose 1.x prints the short forms ("src:dst:mode",
    # "ip:host:container/proto"); newer ones print mappings.
    def data_mount(s):
        for v in s.get("volumes", []):
            if isinstance(v, str):
                src, dst = v.split(":")[:2]
            else:
                src, dst = v.get("source"), v.get("target")
            if dst == s["environment"].get("LUNAMATCH_DATA_DIR"):
                return src
        return None

    def target_port(p):
        if isinstance(p, dict):
            return int(p["target"])
        return int(str(p).split("/")[0].split(":")[-1])
    vi, vm = data_mount(i), data_mount(m)
    check(vi is not None and vi == vm and vi in cfg.get("volumes", {}),
          "ingest and match do not share a named volume at LUNAMATCH_DATA_DIR")
    # One namespace held by a service of its own, as a pod's sandbox holds
    # it: joined to ingest's, match dies with ingest.
    holder = str(m.get("pid", "")).partition("service:")[2]
    check(holder not in ("", "ingest", "match") and i.get("pid") == m.get("pid"),
          "ingest and match do not share a process namespace held by a third service")
    if check(holder in svc, f"the process namespace's holder {holder!r} is not a service"):
        check(svc[holder].get("restart") == "unless-stopped",
              f"{holder}, which holds the process namespace, is not restarted")
    check(i["environment"].get("LUNAMATCH_GROUP_ID") is not None and
          i["environment"].get("LUNAMATCH_GROUP_ID") == m["environment"].get("LUNAMATCH_GROUP_ID"),
          "ingest and match do not name the same ingest group (match reads its offsets)")

    def seconds(d):
        """A compose duration (\"1m30s\", \"30s\", \"500ms\") in seconds."""
        units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
        parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", str(d))
        return sum(float(v) * units[u] for v, u in parts)

    image = image_env(dockerfile_stages()[-1])
    stop_ms = stop_bounds_ms()
    for n, s in (("ingest", i), ("match", m)):
        # Docker's default is 10 s; then the container is killed.
        grace = seconds(s.get("stop_grace_period", "10s"))
        check(grace * 1000 > stop_ms[n], f"{n}: stop_grace_period {grace} s does not cover its stop "
              f"bound of {stop_ms[n]} ms")
        env = dict(image, **{k: str(v) for k, v in s["environment"].items()})
        err = config_error(f"lunamatch-{n}", env)
        check(err is None, f"{n}: lunamatch-{n} refuses the configuration: {err}")
        check("healthcheck" in s, f"{n} has no health check")
        check(s.get("read_only") is True and s.get("cap_drop") == ["ALL"], f"{n}: read-only root, no capabilities")
    pub = {target_port(p) for s in (i, m) for p in s.get("ports", [])}
    check(pub == {7700, 7701, 7702}, f"published ports {sorted(pub)}")
    check(m["environment"].get("LUNAMATCH_RPC_URL", "").endswith(":7700"), "match RPC URL not on 7700")

finish("deploy.compose")
