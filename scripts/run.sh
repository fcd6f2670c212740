#!/usr/bin/env bash
# Installs what is missing, builds the client and the server, and runs the server with the client
# on an embedded sled database in ./data. Ctrl-C stops it (the database is flushed on the way out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-client.sh
cargo build --release --locked -p optovault-server
ADDR="${OPTOVAULT_ADDR:-127.0.0.1:8080}"
PORT="${ADDR##*:}"
echo "OptoVault: open http://localhost:$PORT in a browser (data in ./data)"
exec target/release/optovault-server --addr "$ADDR" --data-dir "${OPTOVAULT_DATA_DIR:-data}" --static-dir dist
