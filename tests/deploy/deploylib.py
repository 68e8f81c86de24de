"""deploylib.py - what the deploy tests share: the paths of the source tree,
the build and the validators' virtual environment; the Dockerfile read as
stages; the Kubernetes overlays rendered by kustomize; and the environment a
container of the rendered StatefulSet gets.

The tests are run by ctest (tests/deploy/CMakeLists.txt) with
LUNAMATCH_SOURCE_DIR, LUNAMATCH_BIN_DIR and DEPLOY_VENV set.
"""
import os
import re
import shlex
import subprocess
import sys

import yaml

SRC = os.environ["LUNAMATCH_SOURCE_DIR"]
BIN = os.environ["LUNAMATCH_BIN_DIR"]
VENV = os.environ["DEPLOY_VENV"]
K8S = os.path.join(SRC, "deploy", "k8s")

# ctest's SKIP_RETURN_CODE for these tests.
SKIP = 77

failures = []


def check(cond, what):
    """Records a failed expectation (the test fails at the end) and prints it."""
    if not cond:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)
    return cond


def finish(name):
    """Exits 1 when any check failed, else 0, after a summary line."""
    if failures:
        print(f"{name}: {len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: all checks passed")
    sys.exit(0)


def tool(name):
    return os.path.join(VENV, "bin", name)


def run(argv, **kw):
    """Runs argv; returns the CompletedProcess with text output."""
    return subprocess.run(argv, capture_output=True, text=True, **kw)


# ---- Dockerfile ---------------------------------------------------------------

class Stage:
    def __init__(self, base, name):
        self.base, self.name = base, name
        self.instructions = []  # (INSTRUCTION, arguments) with continuations joined


def expand_args(text, args):
    """text with the Dockerfile's ${NAME}, ${NAME:-word} and ${NAME:+word}
    replaced from args (word may hold further references)."""
    out, i = "", 0
    while i < len(text):
        m = re.compile(r"\$\{(\w+)(?::([-+]))?").match(text, i)
        if m is None:
            out += text[i]
            i += 1
            continue
        # The word runs to the brace that closes this reference.
        j, depth = m.end(), 1
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        word = text[m.end():j - 1]
        value = args.get(m.group(1), "")
        if m.group(2) == "-":
            out += value if value else expand_args(word, args)
        elif m.group(2) == "+":
            out += expand_args(word, args) if value else ""
        else:
            out += value
        i = j
    return out


def dockerfile_stages(path=None, build_args=None):
    """The stages of the Dockerfile in order, each with its instructions;
    the stages' bases with the ARGs before the first FROM expanded, with
    the values of build_args (as docker build --build-arg) over their
    defaults."""
    path = path or os.path.join(SRC, "Dockerfile")
    text = open(path).read()
    logical, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        logical.append(cur + s)
        cur = ""
    args, stages = {}, []
    for l in logical:
        instr, _, rest = l.partition(" ")
        instr = instr.upper()
        if instr == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k.strip()] = (build_args or {}).get(k.strip(), v.strip())
            continue
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            base = expand_args(m.group(1), args)
            stages.append(Stage(base, m.group(2)))
            continue
        stages[-1].instructions.append((instr, rest))
    return stages


def apt_packages(stage):
    """The packages the stage's RUN instructions install with apt-get."""
    pkgs = []
    for instr, rest in stage.instructions:
        if instr != "RUN":
            continue
        for cmd in re.split(r"&&|;", rest):
            words = shlex.split(cmd)
            if len(words) > 2 and words[0] == "apt-get" and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def image_env(stage):
    """ENV of a stage as a dict."""
    env = {}
    for instr, rest in stage.instructions:
        if instr == "ENV":
            for kv in shlex.split(rest):
                k, _, v = kv.partition("=")
                env[k] = v
    return env


# ---- Kubernetes -----------------------------------------------------------------

def overlays():
    """Every kustomization to render: the base and each overlay, as paths."""
    out = [os.path.join(K8S, "base")]
    od = os.path.join(K8S, "overlays")
    out += [os.path.join(od, d) for d in sorted(os.listdir(od))]
    return out


def render(path):
    """kubectl kustomize path: the list of objects, or raises with stderr."""
    p = run([tool("kubectl"), "kustomize", path])
    if p.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path}: {p.stderr.strip()}")
    return [d for d in yaml.safe_load_all(p.stdout) if d]


def find(objs, kind, name=None):
    got = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    return got


def container_env(objs, container, pod_name):
    """The environment the named container of the StatefulSet gets: the data
    of its envFrom ConfigMaps, then its env entries ($(VAR) references,
    metadata.name field references resolved with pod_name, metadata.namespace
    ones with the StatefulSet's namespace: "default" where the manifests set
    none, as kubectl apply without -n would)."""
    sts = find(objs, "StatefulSet")[0]
    namespace = sts["metadata"].get("namespace", "default")
    c = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == container][0]
    env = {}
    for ef in c.get("envFrom", []):
        cm = find(objs, "ConfigMap", ef["configMapRef"]["name"])[0]
        env.update(cm["data"])
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), e["value"])
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[e["name"]] = pod_name
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[e["name"]] = namespace
        else:
            raise RuntimeError(f"{container}: env {e['name']} has a source the test cannot resolve")
    return env


def program_variables(binary):
    """LUNAMATCH_* variables binary takes (its --help); it ignores others."""
    out = run([os.path.join(BIN, binary), "--help"]).stdout
    return set(re.findall(r"\bLUNAMATCH_[A-Z_]+\b", out))


def program_default(binary, name):
    """The default of variable name in binary (its --help): the one place
    that says it."""
    out = run([os.path.join(BIN, binary), "--help"]).stdout
    m = re.search(r"\b" + name + r", default (\S+)", out)
    if m is None:
        raise RuntimeError(f"{binary} --help gives no default of {name}")
    return m.group(1)


def known_variables():
    """LUNAMATCH_* variables the services and the CLI accept (their --help)."""
    names = set()
    for b in ("lunamatch-ingest", "lunamatch-match", "lunamatch"):
        names |= program_variables(b)
    return names


def stop_bounds_ms():
    """The longest stop of each service, from the signal to its exit (past
    it the service exits at once): {"ingest": ms, "match": ms}, read from
    the sources that define them."""
    out = {}
    for name, path, macro in (("ingest", "services/ingest/consumer.h", "LM_CONSUMER_STOP_MAX_MS"),
                              ("match", "services/match/main.c", "STOP_MAX_MS")):
        m = re.search(r"#define\s+" + macro + r"\s+(\d+)", open(os.path.join(SRC, path)).read())
        if m is None:
            raise RuntimeError(f"{macro} not found in {path}")
        out[name] = int(m.group(1))
    return out


def config_error(binary, env):
    """Why the service binary refuses the configuration env (its whole
    environment, PATH added), or None when it accepts it. The binary is run
    with one argument it refuses only after its configuration has passed
    every check of its values (ranges, addresses, brokers, topics, pairs
    that must differ), so nothing starts."""
    full = dict(env, PATH=os.environ["PATH"])
    p = run([os.path.join(BIN, binary), "lunamatch-deploy-check"], env=full, timeout=30)
    err = p.stderr.strip()
    if p.returncode == 2 and "unexpected argument" in err and "lunamatch-deploy-check" in err:
        return None
    return err or f"exit status {p.returncode}"
