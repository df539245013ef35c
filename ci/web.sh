#!/usr/bin/env bash
# Builds the browser client into $CARGO_TARGET_DIR/web (or web-release with --release): the
# example web crate for wasm32-unknown-unknown, its JavaScript glue from wasm-bindgen (the CLI
# ci/setup.sh installs at Cargo.lock's version), and the pages in example_web/www.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
profile=debug
out="$CARGO_TARGET_DIR/web"
build=(cargo build --locked --target wasm32-unknown-unknown -p bevygap_example_web)
if [ "${1:-}" = "--release" ]; then
  profile=release
  out="$CARGO_TARGET_DIR/web-release"
  build+=(--release)
fi
echo "[web] building the browser client ($profile)"
"${build[@]}"
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/$profile/bevygap_example_web.wasm"
rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" "$wasm"
cp example_web/www/*.html "$out/"
size=$(stat -c %s "$out/bevygap_example_web_bg.wasm")
echo "[web] $out: bevygap_example_web_bg.wasm is $((size / 1024)) KiB ($profile)"
