#!/usr/bin/env bash
# The README's main job: scripts/demo.sh must run to the end and show ranked,
# explained matches, a veto, dead letters and published events.
# Usage: test_demo.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Ports of its own, so that nothing else on the machine can collide with it
# (below the ephemeral range; scripts/ports.py says why).
{ read -r rpc_port; read -r match_port; read -r ingest_port; } < <(python3 "$src/scripts/ports.py" 3)
export LUNAMATCH_RPC_URL=tcp://127.0.0.1:$rpc_port
export LUNAMATCH_DEMO_MATCH_HTTP=127.0.0.1:$match_port
export LUNAMATCH_DEMO_INGEST_HTTP=127.0.0.1:$ingest_port
if ! LUNAMATCH_BIN=$2 timeout 240 "$src/scripts/demo.sh" >"$out" 2>&1; then
	cat "$out"
	echo "demo failed" >&2
	exit 1
fi
for want in \
	"sent 54, failed 0, skipped 0" \
	"Senior Manager, Machine Learning" \
	"cand-ml-lead-chicago / job-dfs-sr-mgr-ml: eligible" \
	"cand-ml-junior-chicago / job-dfs-sr-mgr-ml: NOT ELIGIBLE" \
	"REQUIREMENT_GROUP" \
	"missing_field" "bad_salary" "bad_json" \
	"== shutting down"; do
	if ! grep -qF -- "$want" "$out"; then
		cat "$out"
		echo "demo output lacks: $want" >&2
		exit 1
	fi
done
# The seed posting is among the top jobs of the fitting profile.
sed -n '/top jobs for cand-ml-lead-chicago/,/shown;/p' "$out" | grep -q "job-dfs-sr-mgr-ml" ||
	{ cat "$out"; echo "job-dfs-sr-mgr-ml not in the top jobs" >&2; exit 1; }
# Match events reached the topic (which trigger comes first across
# partitions is not fixed, so any event row counts).
sed -n '/new-match events on lunamatch.matches.v1/,/== /p' "$out" |
	grep -qE ' (new-profile|new-posting|updated) ' ||
	{ cat "$out"; echo "no match events shown" >&2; exit 1; }
echo "demo: ok"
