#!/usr/bin/env bash
# Fuzzes the targets of tests/fuzz/ with libFuzzer: builds them with clang
# (-DLUNAMATCH_FUZZ=ON: coverage instrumentation, AddressSanitizer and
# UndefinedBehaviorSanitizer) in $FUZZ_BUILD, then runs each for
# $FUZZ_SECONDS seconds, starting from its committed seed corpus
# (tests/fuzz/corpus/<target>/). Used by `make fuzz`; not part of `make test`.
#
#   scripts/fuzz.sh [TARGET...]     targets: ingest pb json match rpc (default all)
#
# Environment: FUZZ_SECONDS (default 60, per target), FUZZ_BUILD (default
# build-fuzz), FUZZ_ARGS (more libFuzzer options, e.g. "-jobs=2"), CC (default
# clang, else clang-14).
#
# New inputs that reach new code go to $FUZZ_BUILD/fuzz-corpus/<target>/ (kept
# between runs, never committed as they are). A crash, a leak, a sanitizer
# report or a failed check stops the target; the input is written to
# $FUZZ_BUILD/fuzz-artifacts/<target>/ and the script prints how to replay
# it: the fuzz binary takes the file as its argument, and so does the
# target of the normal build (build/tests/fuzz_<target> FILE), which replays
# without libFuzzer. Fix the bug, then add the file to
# tests/fuzz/corpus/<target>/ as a regression (docs/CONTRIBUTING.md).
# Exits non-zero when any target found something.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${FUZZ_BUILD:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
all=(ingest pb json match rpc)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

if [ ! -f "$build/build.ninja" ]; then
	cc=${CC:-}
	if [ -z "$cc" ]; then
		cc=$(command -v clang || command -v clang-14 || true)
	fi
	[ -n "$cc" ] || { echo "fuzz: clang is needed (scripts/install-deps.sh fuzz)" >&2; exit 1; }
	CC=$cc cmake -S . -B "$build" -G Ninja -DLUNAMATCH_FUZZ=ON >/dev/null
fi
cmake --build "$build" --target "${targets[@]/#/fuzz_}"

export LUNAMATCH_SOURCE_DIR=$PWD
export LUNAMATCH_LOG_LEVEL=${LUNAMATCH_LOG_LEVEL:-error}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "${targets[@]}"; do
	work=$build/fuzz-corpus/$t
	art=$build/fuzz-artifacts/$t
	mkdir -p "$work" "$art"
	echo "== fuzz_$t for ${secs}s"
	# shellcheck disable=SC2086
	if ! "$build/tests/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$art/" ${FUZZ_ARGS:-} "$work" "tests/fuzz/corpus/$t"; then
		status=1
		echo "fuzz_$t found a bug; the input is in $art/. Replay it with:" >&2
		echo "  $build/tests/fuzz_$t $art/<file>     (libFuzzer build)" >&2
		echo "  build/tests/fuzz_$t $art/<file>       (normal build)" >&2
	fi
done
exit $status
