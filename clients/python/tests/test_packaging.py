"""Packaging. The installed package asks for the protobuf runtime its
generated modules run on: the major version they were generated for, and no
older. Generated code checks that at import (VersionError otherwise); a
requirement wider than that let pip keep a runtime that cannot import the
package. An sdist carries the .proto files its build needs, and an editable
install can import the generated modules.

The builds run offline in copies of clients/python and proto/ laid out as in
the repository, with this interpreter's setuptools and grpcio-tools (no
build isolation)."""
import importlib.metadata
import inspect
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from lunamatch.v1 import rpc_pb2

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = ("rpc", "match", "records", "events")

GENCODE = re.compile(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,"
                     r"\s*(\d+),\s*(\d+),\s*(\d+)")


def version(text):
    return tuple(int(x) for x in text.split("."))


def test_protobuf_requirement_matches_the_generated_code():
    m = GENCODE.search(inspect.getsource(rpc_pb2))
    assert m is not None, "the generated code names no runtime version"
    gen = tuple(int(x) for x in m.groups())
    reqs = [r for r in importlib.metadata.requires("lunamatch")
            if re.match(r"protobuf\b", r)]
    assert len(reqs) == 1, reqs
    lower = re.search(r">=\s*([\d.]+)", reqs[0])
    upper = re.search(r"<\s*([\d.]+)", reqs[0])
    assert lower is not None and upper is not None, reqs[0]
    # Admits the generated version, nothing older, no other major.
    assert version(lower.group(1)) == gen
    assert version(upper.group(1)) == (gen[0] + 1,)


def test_pynng_requirement_is_the_tested_series():
    """The client uses pynng's internals (pynng._aio's completion callback
    and its map), which a new pynng release may change, and works around the
    abort races of the nng that pynng 0.9 bundles (with pynng 0.8's nng 1.6,
    closing a client can hang in nng_close): the requirement admits the
    installed minor series and no other, earlier or later."""
    import pynng
    reqs = [r for r in importlib.metadata.requires("lunamatch") if re.match(r"pynng\b", r)]
    assert len(reqs) == 1, reqs
    lower = re.search(r">=\s*([\d.]+)", reqs[0])
    upper = re.search(r"<\s*([\d.]+)", reqs[0])
    assert lower is not None and upper is not None, reqs[0]
    installed = version(pynng.__version__)
    assert version(lower.group(1)) == installed[:2] <= installed
    assert installed < version(upper.group(1)) == (installed[0], installed[1] + 1)


def run(*args, cwd):
    env = {k: v for k, v in os.environ.items()
           if k not in ("LUNAMATCH_PROTO_DIR", "PYTHONPATH")}
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, "%s failed:\n%s\n%s" % (args, out.stdout, out.stderr[-4000:])


@pytest.fixture
def checkout(tmp_path):
    """A copy of clients/python and proto/ as the repository lays them out;
    returns the package's directory."""
    # Without build outputs, nor the src/lunamatch/v1 an editable install
    # of the checkout generated.
    shutil.copytree(REPO / "clients" / "python", tmp_path / "clients" / "python",
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__",
                                                  ".pytest_cache", "v1"))
    shutil.copytree(REPO / "proto", tmp_path / "proto")
    return tmp_path / "clients" / "python"


def pip(*args, cwd):
    run(sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args, cwd=cwd)


def test_a_wheel_builds_from_the_sdist(checkout, tmp_path):
    """The sdist holds the schemas, so a wheel builds from it alone (as
    ``python -m build`` does, in a directory without the repository)."""
    dist = tmp_path / "dist"
    run(sys.executable, "-c", "import sys; from setuptools import build_meta; "
        "build_meta.build_sdist(sys.argv[1])", str(dist), cwd=checkout)
    (sdist,) = dist.glob("lunamatch-*.tar.gz")
    with tarfile.open(sdist) as t:
        names = t.getnames()
    for s in SCHEMAS:
        assert any(n.endswith("/proto/lunamatch/v1/%s.proto" % s) for n in names), names
    shutil.rmtree(tmp_path / "proto")  # the sdist must not need the repository
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(sdist),
        cwd=tmp_path)
    (wheel,) = dist.glob("lunamatch-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    for s in SCHEMAS:
        assert "lunamatch/v1/%s_pb2.py" % s in names, names


def test_an_editable_install_imports_the_generated_modules(checkout, tmp_path):
    """pip install -e generates lunamatch/v1 into the source tree, where the
    editable install imports the package from."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=tmp_path)
    python = venv / "bin" / "python"
    # This interpreter's packages (pip, setuptools, grpcio-tools, pynng,
    # protobuf) are seen by the new environment, behind its own.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "zz-test-deps.pth").write_text("\n".join(deps) + "\n")
    run(str(python), "-m", "pip", "-q", "--disable-pip-version-check", "install",
        "--no-deps", "--no-build-isolation", "-e", str(checkout), cwd=tmp_path)
    run(str(python), "-c", "import lunamatch, lunamatch.v1.match_pb2 as m; "
        "assert lunamatch.__file__.startswith(%r), lunamatch.__file__; "
        "assert m.MatchJobsRequest" % str(checkout), cwd=tmp_path)
