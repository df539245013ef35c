#!/usr/bin/env bash
# The local demo: installs what is missing, builds, then runs NATS, the matchmaker with the local
# fleet, and bot players joining and leaving, and prints a summary. Extra arguments go to the demo
# (e.g. `bash ci/demo.sh --bots 12 --seats 4`). `bash ci/demo.sh --browser` builds the browser
# client too and keeps the stack up with its page served, printing the URL to open.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
. ci/env.sh
echo "[demo] building the matchmaker, the example game server and the bots"
cargo build --locked -p bevygap_example_game --bins
for arg in "$@"; do
  if [ "$arg" = "--browser" ]; then
    bash ci/web.sh
  fi
done
exec "$CARGO_TARGET_DIR/debug/demo" "$@"
