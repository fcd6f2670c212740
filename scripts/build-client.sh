#!/usr/bin/env bash
# Builds the web client into dist/ with Trunk, offline: Trunk uses the wasm-bindgen and wasm-opt
# installed by scripts/setup.sh (their versions are pinned in Trunk.toml) and never fetches any.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
cargo fetch --locked >/dev/null
# OV_DIST_DIR builds elsewhere than dist/ (so a build never replaces files under running tests).
DIST="${OV_DIST_DIR:-dist}"
trunk build --offline --release --dist "$DIST"
# The page must start without inline script (the CSP forbids it).
if grep -qiE '<script>|<script type="module">' "$DIST/index.html"; then
  echo "$DIST/index.html has an inline script; the CSP would block it" >&2
  exit 1
fi
# Compressed copies the server sends to browsers that accept gzip (about 40% of the size).
gzip -9 -k -f "$DIST"/*.wasm "$DIST"/*.js "$DIST"/*.css
echo "client built: $(du -h "$DIST"/*.wasm | cut -f1) wasm, $(du -h "$DIST"/*.wasm.gz | cut -f1) gzipped"
