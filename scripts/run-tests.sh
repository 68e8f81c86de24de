#!/usr/bin/env bash
# The whole test suite, from scratch: the warnings-as-errors build and every
# test (unit, integration on the embedded broker, integration on a real Apache
# Kafka), then the address+undefined sanitizer build and its tests, then the
# thread sanitizer build of the concurrency-heavy unit tests.
# Exits non-zero when any build or test fails. Used by `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc 2>/dev/null || echo 2)
# Tests run two at a time: most of their time is spent waiting (consumer
# group joins, restarts, timeouts), and the suite is checked at this
# parallelism on two cores. CTEST_JOBS=1 runs them one by one.
ctest_jobs=${CTEST_JOBS:-2}
build=${BUILD:-build}
asan=${ASAN_BUILD:-build-asan}
status=0

# The real broker runs detached (setsid) from the ctest fixture that starts
# it, and only the fixture's cleanup stops it: a run interrupted meanwhile
# leaves it running, holding the test port, with its state directory (pid
# file included) under the build directory. Stop it before that directory
# is removed, and stop this run's broker however the run ends.
stop_broker() {
	local dir
	dir=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
	[ -z "$dir" ] || scripts/kafka.sh stop --dir "$dir/kafka" >/dev/null 2>&1 || true
}
trap stop_broker EXIT

scripts/install-deps.sh
# The real broker's jars, fetched once into the cache (idempotent).
scripts/kafka.sh fetch

echo "== release build (warnings are errors)"
stop_broker
rm -rf "$build"
cmake -S . -B "$build" -G Ninja -DLUNAMATCH_WERROR=ON ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$jobs"

echo "== tests"
(cd "$build" && ctest -j "$ctest_jobs" --output-on-failure --timeout 600) || status=1

# The Python client against real services of the release build (its own
# virtual environment under the build directory).
echo "== Python client tests (pytest)"
clients/python/run-tests.sh "$build" || status=1

echo "== sanitizer build (address, undefined)"
rm -rf "$asan"
cmake -S . -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLUNAMATCH_WERROR=ON \
	-DLUNAMATCH_SANITIZE=address,undefined ${CMAKE_ARGS:-} >/dev/null
cmake --build "$asan" -j "$jobs"

# The real broker, the install and the deployment tests and the soak run in
# the release build only.
echo "== tests under sanitizers (unit and embedded-broker integration)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Leaks inside nng 1.5.2 itself are suppressed (the file says which and why).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp}
(cd "$asan" && ctest -j "$ctest_jobs" --output-on-failure --timeout 600 -LE 'kafka|install|deploy|soak') || status=1

# ThreadSanitizer: the concurrency-heavy unit tests (label tsan; see
# tests/CMakeLists.txt for which and why not the others).
echo "== thread sanitizer build and its tests"
tsan=${TSAN_BUILD:-build-tsan}
rm -rf "$tsan"
cmake -S . -B "$tsan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLUNAMATCH_WERROR=ON \
	-DLUNAMATCH_SANITIZE=thread ${CMAKE_ARGS:-} >/dev/null
cmake --build "$tsan" -j "$jobs"
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
(cd "$tsan" && ctest -j "$ctest_jobs" --output-on-failure --timeout 600 -L tsan) || status=1

exit $status
