#!/usr/bin/env bash
# The test command: set-up, format check, clippy with -D warnings, all tests (with doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
. ci/env.sh

echo "[test] cargo fmt --check"
cargo fmt --all --check

echo "[test] cargo clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

if rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
  echo "[test] wasm32 check of the client crates"
  cargo check --locked --target wasm32-unknown-unknown -p bevygap_shared --no-default-features
fi

echo "[test] cargo test"
cargo test --workspace --locked
