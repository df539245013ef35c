#!/usr/bin/env bash
# A local stack that stays up: NATS, the matchmaker with the local fleet, and example game servers
# started on demand. Prints the websocket URLs, the status page, the inspection endpoint and a
# one-line command to join as a bot; Ctrl-C stops everything it started. Extra arguments go to
# the demo binary (e.g. `bash ci/serve.sh --seats 8 --transport webtransport`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
. ci/env.sh
echo "[serve] building the matchmaker, the example game server and the bot"
cargo build --locked -p bevygap_example_game --bins
exec "$CARGO_TARGET_DIR/debug/demo" --serve "$@"
