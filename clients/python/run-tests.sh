#!/usr/bin/env bash
# The Python client's test suite, against the binaries of a CMake build.
#
#   clients/python/run-tests.sh [BUILD_DIR [PYTEST_ARGS...]]   (default: build)
#
# Creates a virtual environment in BUILD_DIR/pyenv once, installs the
# package's build requirements and the package with its test extra into it
# (pip kept quiet; reruns only reinstall the package, so that the protobuf
# modules are generated again from proto/), then runs pytest with the
# services from BUILD_DIR/bin. Used by scripts/run-tests.sh (make test).
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${1:-build}
shift || true
# Absolute (BUILD may be either), as the test run below starts elsewhere.
case $build in /*) ;; *) build=$PWD/$build ;; esac
venv="$build/pyenv"
pip=("$venv/bin/python" -m pip -q --disable-pip-version-check)

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# The build requirements, as pyproject.toml lists them.
mapfile -t reqs < <("$venv/bin/python" -c '
import tomllib
with open("clients/python/pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))')
"${pip[@]}" install "${reqs[@]}"
"${pip[@]}" install --no-build-isolation "./clients/python[test]"
"${pip[@]}" install --no-build-isolation --no-deps --force-reinstall ./clients/python

# Each test is bounded (pyproject.toml: timeout); the whole run too, for a
# hang outside any test (at interpreter exit).
cd clients/python
LUNAMATCH_BIN="$build/bin" \
	exec timeout --kill-after=30 1200 "$venv/bin/python" -m pytest \
	-p no:cacheprovider -q -rfEs "$@"
