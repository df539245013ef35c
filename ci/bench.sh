#!/usr/bin/env bash
# Benchmarks (not part of the test command): `bash ci/bench.sh` (short profile, a couple of
# minutes) or `bash ci/bench.sh long`. Release build; figures printed and written as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
. ci/env.sh
profile="${1:-short}"
# Thousands of idle connections need file descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --release --locked -p bevygap_loadgen -p bevygap_matchmaker -p bevygap_example_game --bins
mkdir -p "$CARGO_TARGET_DIR/bench"
exec "$CARGO_TARGET_DIR/release/bevygap_bench" --profile "$profile" \
  --json-out "$CARGO_TARGET_DIR/bench/$profile.json"
