#!/usr/bin/env bash
# Installs what building, running and testing OptoVault need, only where it is missing:
# the wasm32 target, Trunk 0.21.14, wasm-bindgen-cli at Cargo.lock's version, wasm-opt
# (npm binaryen@132) and playwright-core (npm), Debian's chromium, and schemathesis and fhir.resources (PyPI).
# Everything comes from crates.io, npm, PyPI or Debian: Trunk never downloads its own tools.
set -euo pipefail
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14
SCHEMATHESIS_VERSION=4.32.5
FHIR_RESOURCES_VERSION=8.3.0
say() { printf '[setup] %s\n' "$*"; }

export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(trunk --version 2>/dev/null || true)" != "trunk $TRUNK_VERSION" ]; then
  say "installing trunk $TRUNK_VERSION (compiles from crates.io; about 15-20 minutes on 2 cores)"
  cargo install --locked trunk --version "$TRUNK_VERSION"
fi

# wasm-bindgen-cli must match the wasm-bindgen library in Cargo.lock exactly.
WBG_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$WBG_VERSION" ]; then
  say "cannot find wasm-bindgen in Cargo.lock"; exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WBG_VERSION" ]; then
  say "installing wasm-bindgen-cli $WBG_VERSION"
  cargo install wasm-bindgen-cli --version "$WBG_VERSION"
fi

apt_missing=()
[ -x /usr/bin/chromium ] || apt_missing+=(chromium)
command -v node >/dev/null || apt_missing+=(nodejs)
command -v npm >/dev/null || apt_missing+=(npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_missing+=(python3-venv)
# webauthn-rs (passkeys, server) verifies signatures with OpenSSL.
dpkg -s libssl-dev >/dev/null 2>&1 || apt_missing+=(libssl-dev)
command -v pkg-config >/dev/null || apt_missing+=(pkg-config)
# The Store suite also runs on PostgreSQL: scripts/pg-cluster.sh runs a throwaway cluster with
# Debian's server binaries (/usr/lib/postgresql/<major>/bin).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_missing+=(postgresql)
if [ ${#apt_missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${apt_missing[@]}"
fi

# wasm-opt and playwright-core, pinned in package.json / package-lock.json.
if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -d node_modules/playwright-core ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm tools (binaryen, playwright-core)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# schemathesis in its own virtualenv, so the system Python stays untouched.
if [ ! -x .tools/venv/bin/st ] || ! .tools/venv/bin/st --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  say "installing schemathesis $SCHEMATHESIS_VERSION"
  mkdir -p .tools
  python3 -m venv .tools/venv
  .tools/venv/bin/pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# fhir.resources: an independent FHIR implementation that judges our FHIR exports.
if ! .tools/venv/bin/python -c "import importlib.metadata as m; assert m.version('fhir.resources') == '$FHIR_RESOURCES_VERSION'" 2>/dev/null; then
  say "installing fhir.resources $FHIR_RESOURCES_VERSION"
  .tools/venv/bin/pip install -q --disable-pip-version-check "fhir.resources==$FHIR_RESOURCES_VERSION"
fi

say "tools ready: $(trunk --version), $(wasm-bindgen --version), $(node_modules/.bin/wasm-opt --version | head -n1)"
