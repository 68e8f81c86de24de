#!/usr/bin/env bash
# Installs the build into a temporary prefix and checks what a client gets:
# - the public client library liblunamatch-client exports exactly the LM_API
#   functions of its installed headers and the generated code of the public
#   schemas, and needs only nng and protobuf-c (and libc);
# - no internal header or library is installed, and no installed binary needs
#   an internal library;
# - the example C client builds against the installed headers through
#   pkg-config only, links only the client library and protobuf-c, and
#   reports an address where nothing listens as unreachable (exit 3).
# Usage: test_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
prefix=$(mktemp -d "${TMPDIR:-/tmp}/lunamatch-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
fail() { echo "install: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/lunamatch bin/lunamatch-ingest bin/lunamatch-match bin/lunamatch-devkafka \
	include/lunamatch/client.h include/lunamatch/error.h include/lunamatch/api.h \
	include/lunamatch/v1/match.pb-c.h include/lunamatch/v1/events.pb-c.h \
	share/lunamatch/skills.tsv; do
	[ -e "$prefix/$f" ] || fail "missing after install: $f"
done

# The data files the services read (docs/deployment.md), and nothing else
# of data/: not the samples, not the evaluation set and its scripts.
data=$(cd "$prefix/share/lunamatch" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')
want_data="fairness/requirements.tsv geo/LICENSE geo/cities.tsv model/default.json rates.tsv skills.tsv "
[ "$data" = "$want_data" ] || fail "installed data files: $data; want: $want_data"

# Only the public headers and the client library.
extra=$(cd "$prefix/include/lunamatch" && ls | grep -v -x -e api.h -e client.h -e error.h -e v1 || true)
[ -z "$extra" ] || fail "internal headers installed: $extra"
[ ! -e "$prefix/include/lunamatch/v1/store.pb-c.h" ] || fail "internal schema installed"
lib=$(find "$prefix" -name 'liblunamatch-client.so.*.*' | head -n 1)
[ -n "$lib" ] || fail "liblunamatch-client not installed"
others=$(find "$prefix" -name 'liblunamatch*' ! -name 'liblunamatch-client.so*')
[ -z "$others" ] || fail "internal libraries installed: $others"
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = liblunamatch-client.so.0 ] || fail "soname is '$soname'"

# Exported symbols: the LM_API declarations of the installed headers plus
# the generated lunamatch__v1__ code, nothing else.
want=$(cat "$prefix"/include/lunamatch/*.h | grep -v '^#' | tr '\n' ' ' |
	grep -o 'LM_API [^(;]*(' | sed 's/($//; s/.*[ *]//' | grep . | sort -u)
got=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^lunamatch__v1__' | sort -u)
[ -n "$want" ] || fail "no LM_API declarations found in the installed headers"
if [ "$want" != "$got" ]; then
	echo "exported:" $got >&2
	echo "declared:" $want >&2
	fail "the client library's exports differ from its public API"
fi
case " $(nm -D --defined-only "$lib" | awk '{print $3}' | tr '\n' ' ') " in
*" lunamatch__v1__match_jobs_request__descriptor "*) ;;
*) fail "generated code of the public schemas not exported" ;;
esac

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
bad=$(needed "$lib" | grep -v -e '^libnng\.so' -e '^libprotobuf-c\.so' -e '^libc\.so' || true)
[ -z "$bad" ] || fail "liblunamatch-client needs more than nng and protobuf-c: $bad"
for b in "$prefix"/bin/*; do
	if needed "$b" | grep -q '^liblunamatch'; then
		fail "$(basename "$b") needs an installed lunamatch library"
	fi
done

pc=$(find "$prefix" -name lunamatch-client.pc | head -n 1)
[ -n "$pc" ] || fail "lunamatch-client.pc not installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
# The .pc file is relative to its prefix: point it at the temporary one.
flags=$(pkg-config --define-variable=prefix="$prefix" --cflags --libs lunamatch-client)
cc -Wall -Wextra -Werror -Wl,--as-needed -o "$prefix/match_jobs" \
	"$src/clients/c/match_jobs.c" $flags
bad=$(needed "$prefix/match_jobs" |
	grep -v -e '^liblunamatch-client\.so' -e '^libprotobuf-c\.so' -e '^libc\.so' || true)
[ -z "$bad" ] || fail "a client program needs more than the client library: $bad"
set +e
LD_LIBRARY_PATH="$(dirname "$lib")" "$prefix/match_jobs" tcp://127.0.0.1:9 cand-x \
	>"$prefix/out" 2>&1
rc=$?
set -e
if [ $rc -ne 3 ]; then
	echo "example client: exit $rc, want 3:" >&2
	cat "$prefix/out" >&2
	exit 1
fi
echo "install: ok (client library exports its public API only; example client built" \
	"with pkg-config links only the client library and protobuf-c)"
