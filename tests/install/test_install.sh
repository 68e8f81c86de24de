#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds the example C
# client against the installed headers and library through pkg-config only,
# and runs it against an address where nothing listens (it must report the
# server unreachable, exit 3). Proves that `make install` ships a usable
# client library. Usage: test_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
prefix=$(mktemp -d "${TMPDIR:-/tmp}/lunamatch-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/lunamatch bin/lunamatch-ingest bin/lunamatch-match bin/lunamatch-devkafka \
	include/lunamatch/client.h include/lunamatch/v1/match.pb-c.h share/lunamatch/skills.tsv; do
	[ -e "$prefix/$f" ] || { echo "missing after install: $f" >&2; exit 1; }
done
pc=$(find "$prefix" -name lunamatch.pc | head -n 1)
[ -n "$pc" ] || { echo "lunamatch.pc not installed" >&2; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
# The .pc file is relative to its prefix: point it at the temporary one.
flags=$(pkg-config --define-variable=prefix="$prefix" --cflags --libs lunamatch)
cc -Wall -Wextra -Werror -o "$prefix/match_jobs" "$src/clients/c/match_jobs.c" $flags
set +e
LD_LIBRARY_PATH="$(dirname "$(dirname "$pc")")" "$prefix/match_jobs" tcp://127.0.0.1:9 cand-x \
	>"$prefix/out" 2>&1
rc=$?
set -e
if [ $rc -ne 3 ]; then
	echo "example client: exit $rc, want 3:" >&2
	cat "$prefix/out" >&2
	exit 1
fi
echo "install: ok (example client built with pkg-config, unreachable server reported)"
