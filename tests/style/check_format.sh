#!/usr/bin/env bash
# Fails when a tracked C source or header differs from .clang-format
# (`make format` fixes it). Usage: check_format.sh SOURCE_DIR
set -euo pipefail
cd "$1"
command -v clang-format >/dev/null || { echo "clang-format is not installed" >&2; exit 1; }
bad=()
while IFS= read -r f; do
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h')
if [ ${#bad[@]} -gt 0 ]; then
	printf 'not formatted (run make format): %s\n' "${bad[@]}" >&2
	exit 1
fi
echo "format: $(git ls-files '*.c' '*.h' | wc -l) files follow .clang-format"
