#!/usr/bin/env bash
# Fuzzes the running server from its own OpenAPI document with schemathesis: valid and invalid
# inputs for every operation, authenticated as a member of a clinic with patients. Passes when no
# response is a 5xx, the server never crashes, and it still answers afterwards. Loopback only,
# bounded by --max-examples per operation.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT="${OV_TEST_OUTPUT:-$ROOT/test-output}"
mkdir -p "$OUT"
SERVER_BIN="${OPTOVAULT_SERVER_BIN:-$ROOT/target/debug/optovault-server}"
FIXTURE_BIN="${OV_FIXTURE_BIN:-$ROOT/target/debug/ov-fixture}"
EXAMPLES="${OV_FUZZ_EXAMPLES:-40}"

DATA=$(mktemp -d)
LOG="$OUT/server-fuzz.log"
"$SERVER_BIN" --addr 127.0.0.1:0 --data-dir "$DATA" >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
  URL=$(grep -o 'http://127[0-9.:]*' "$LOG" | head -n1 || true)
  [ -n "$URL" ] && break
  sleep 0.1
done
[ -n "${URL:-}" ] || { echo "server did not start"; cat "$LOG"; exit 1; }

FIXTURE=$("$FIXTURE_BIN" --base "$URL" --username "fuzz-$RANDOM$RANDOM" --password 'saffron bicycle yawns 71 moss' --patients 5)
field() { printf '%s' "$FIXTURE" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
COOKIE=$(field cookie)
export OV_FUZZ_CLINIC_ID=$(field clinic_id) OV_FUZZ_RECORD_ID=$(field record_id)

fuzz() { # $1: name of the pass; further arguments go before `run`
  local name=$1; shift
  .tools/venv/bin/st "$@" run "$URL/api/openapi.json" \
    --url "$URL" \
    --checks not_a_server_error \
    --max-examples "$EXAMPLES" \
    --seed 20261126 \
    --workers 1 \
    --header "Cookie: $COOKIE" \
    --exclude-path /api/session/logout \
    --request-timeout 30 \
    --report junit --report-junit-path "$OUT/schemathesis-$name-junit.xml"
}
set +e
echo "-- pass 1: every operation, random ids"
fuzz random
ST1=$?
echo "-- pass 2: every operation inside the session's own clinic"
fuzz member --config-file tests/fuzz/member.toml
ST2=$?
set -e
ST=$((ST1 + ST2))

alive=0
curl -fsS "$URL/api/health" >/dev/null && alive=1
panics=$(grep -c 'panicked' "$LOG" || true)
echo "schemathesis exit $ST; server alive afterwards: $alive; panics in log: $panics"
if [ "$ST" -ne 0 ] || [ "$alive" -ne 1 ] || [ "$panics" -ne 0 ]; then
  echo "API fuzzing failed (see $LOG)" >&2
  exit 1
fi
