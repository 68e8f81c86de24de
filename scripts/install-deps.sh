#!/usr/bin/env bash
# Installs the Debian packages lunamatch builds and tests with, when any is
# missing. Idempotent: a machine that has everything is left alone. Needs root
# (or sudo) only when something must be installed.
#
#   scripts/install-deps.sh          what the build and `make test` need
#   scripts/install-deps.sh fuzz     also clang and libFuzzer (`make fuzz`)
set -euo pipefail

pkgs=(
	build-essential cmake ninja-build pkg-config
	protobuf-c-compiler libprotobuf-c-dev
	libnng-dev libmbedtls-dev libssl-dev librdkafka-dev liblmdb-dev libjansson-dev libmicrohttpd-dev
	libcmocka-dev libpng-dev kcat curl ca-certificates python3 python3-venv openssl clang-format git
	openjdk-17-jre-headless maven
	docker-compose python3-venv iproute2
)
if [ "${1:-}" = fuzz ]; then
	pkgs+=(clang-14 libclang-rt-14-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
# apt-get runs without questions (no standard input in CI). sudo resets
# the environment, so the setting is passed through env on its command line.
as_root=(env DEBIAN_FRONTEND=noninteractive)
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
	as_root=(sudo "${as_root[@]}")
fi
# A fresh machine often runs its own apt (the daily update, unattended
# upgrades) right after boot: wait for its locks instead of failing at once.
# apt-get install waits for the dpkg lock itself; apt-get update does not
# wait for the package lists' lock, so it is tried again, for as long.
lock=(-o DPkg::Lock::Timeout=600)
for try in $(seq 60); do
	"${as_root[@]}" apt-get "${lock[@]}" update -qq && break
	[ "$try" -lt 60 ] || exit 1
	echo "install-deps: apt-get update failed (another apt may hold its lock); again in 10 s" >&2
	sleep 10
done
"${as_root[@]}" apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
