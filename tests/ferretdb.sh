# Sourced by tests/run.sh and bench scripts: builds the embedded FerretDB (tests/ferretdb/) once,
# starts it on a free loopback port with a fresh data directory, exports
# MAIDIAN_TEST_MONGODB_URI, and stops it when the calling shell exits.
#
# Usage: source tests/ferretdb.sh   (from the repository root)

ferretdb_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ferretdb_bin="$ferretdb_root/target/ferretdb/ferretdb"
ferretdb_data="$(mktemp -d "${TMPDIR:-/tmp}/maidian-ferretdb.XXXXXX")"

if [ ! -x "$ferretdb_bin" ] || [ -n "$(find "$ferretdb_root/tests/ferretdb" -newer "$ferretdb_bin" -name '*.go' -o -newer "$ferretdb_bin" -name 'go.*' 2>/dev/null)" ]; then
  echo "building FerretDB test server..." >&2
  (cd "$ferretdb_root/tests/ferretdb" && go build -o "$ferretdb_bin" .) || return 1
fi

ferretdb_out="$ferretdb_data/uri"
"$ferretdb_bin" -listen 127.0.0.1:0 -data "$ferretdb_data/db" >"$ferretdb_out" 2>"$ferretdb_data/log" &
ferretdb_pid=$!

for _ in $(seq 1 300); do
  [ -s "$ferretdb_out" ] && break
  if ! kill -0 "$ferretdb_pid" 2>/dev/null; then
    echo "FerretDB failed to start:" >&2; cat "$ferretdb_data/log" >&2; return 1
  fi
  sleep 0.1
done
MAIDIAN_TEST_MONGODB_URI="$(head -n1 "$ferretdb_out")"
if [ -z "$MAIDIAN_TEST_MONGODB_URI" ]; then
  echo "FerretDB did not report its URI" >&2; return 1
fi
export MAIDIAN_TEST_MONGODB_URI
echo "FerretDB at $MAIDIAN_TEST_MONGODB_URI (data in $ferretdb_data)" >&2

ferretdb_stop() {
  kill "$ferretdb_pid" 2>/dev/null
  wait "$ferretdb_pid" 2>/dev/null
  rm -rf "$ferretdb_data"
}
trap ferretdb_stop EXIT
