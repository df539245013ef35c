#!/usr/bin/env bash
# Container images FROM scratch for the matchmaker, the example game server and the Edgegap
# replica, from statically linked (musl) release binaries, built with podman or docker. Each
# image is then exported and the binary found in it is started against a real nats-server, so an
# image that cannot start is caught even where the sandbox cannot run containers. A release
# build: not part of the test command. Usage: bash ci/images.sh [TAG] (default: dev).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
. ci/env.sh
log() { printf '[images] %s\n' "$*"; }
tag="${1:-dev}"
engine=$(command -v podman || command -v docker || true)
if [ -z "$engine" ]; then
  log "neither podman nor docker is installed (apt-get install podman)"
  exit 1
fi
target=x86_64-unknown-linux-musl
rustup target list --installed 2>/dev/null | grep -q "^$target\$" || rustup target add "$target"
if ! command -v musl-gcc >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  log "installing musl-tools (the C parts of the TLS stack need musl-gcc)"
  $sudo_cmd apt-get install -y -qq musl-tools >/dev/null
fi
log "static release build ($target)"
cargo build --release --locked --target "$target" \
  -p bevygap_matchmaker --bin bevygap_matchmaker \
  -p bevygap_example_game --bin example_server \
  -p bevygap_edgegap_replica --bin edgegap_replica
bin_dir="$CARGO_TARGET_DIR/$target/release"

work=$(mktemp -d)
pids=()
cleanup() {
  # Last started first (NATS last), then SIGKILL whatever outlives a 5 s grace.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
stage="$work/context"
mkdir -p "$stage/bin" "$stage/etc/ssl/certs"
cp "$bin_dir/bevygap_matchmaker" "$bin_dir/example_server" "$bin_dir/edgegap_replica" "$stage/bin/"
cp /etc/ssl/certs/ca-certificates.crt "$stage/etc/ssl/certs/"

declare -A images=(
  [matchmaker]=bevygap_matchmaker
  [gameserver]=example_server
  [edgegap_replica]=edgegap_replica
)
for name in matchmaker gameserver edgegap_replica; do
  image="localhost/bevygap-${name//_/-}:$tag"
  "$engine" build --quiet -f "images/$name.Containerfile" -t "$image" "$stage" >/dev/null
  size=$("$engine" image inspect --format '{{.Size}}' "$image")
  log "$image: $((size / 1024)) KiB"
  # Export the image and unpack its layers: the binary is run from there.
  root="$work/root-$name"
  mkdir -p "$root"
  "$engine" image save --format docker-archive -o "$work/$name.tar" "$image" >/dev/null
  mkdir -p "$work/$name.archive"
  tar -xf "$work/$name.tar" -C "$work/$name.archive"
  find "$work/$name.archive" -name '*.tar' ! -name "$name.tar" -exec tar -xf {} -C "$root" \;
  binary="$root/${images[$name]}"
  [ -x "$binary" ] || { log "$image has no executable /${images[$name]}"; exit 1; }
  file "$binary" 2>/dev/null | grep -q 'statically linked\|static-pie' ||
    { log "$binary is not statically linked"; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url, what
  for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "$2 did not answer at $1"
  exit 1
}
nats_port=$(free_port)
nats-server -js -p "$nats_port" -a 127.0.0.1 -sd "$work/js" >/dev/null 2>&1 &
pids+=($!)
key=$(python3 -c 'import os; print(os.urandom(32).hex())')

mm_port=$(free_port)
LIGHTYEAR_PRIVATE_KEY=$key "$work/root-matchmaker/bevygap_matchmaker" \
  --app-name image-check --app-version 1 --lightyear-protocol-id 7 --fleet static \
  --listen "127.0.0.1:$mm_port" --remote-port 0 --metrics-port 0 \
  --nats-host "127.0.0.1:$nats_port" --nats-insecure --log warn &
pids+=($!)
wait_http "http://127.0.0.1:$mm_port/readyz" "the matchmaker from its image"
log "matchmaker from its image: ready"

game_port=$(free_port)
BEVYGAP_DEPLOYMENT_ID=image-check-1 BEVYGAP_PUBLIC_IP=127.0.0.1 BEVYGAP_PORT=$game_port \
  BEVYGAP_APP_NAME=image-check BEVYGAP_APP_VERSION=1 LIGHTYEAR_PRIVATE_KEY=$key \
  LIGHTYEAR_PROTOCOL_ID=7 NATS_HOST="127.0.0.1:$nats_port" NATS_INSECURE=true RUST_LOG=warn \
  "$work/root-gameserver/example_server" &
pids+=($!)
for _ in $(seq 1 200); do
  if curl -fsS "http://127.0.0.1:$mm_port/status.json" 2>/dev/null | grep -q 'image-check-1'; then
    log "game server from its image: registered with the matchmaker"
    break
  fi
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$mm_port/status.json" | grep -q 'image-check-1' ||
  { log "the game server from its image never registered"; exit 1; }

replica_port=$(free_port)
"$work/root-edgegap_replica/edgegap_replica" --listen "127.0.0.1:$replica_port" \
  --api-key image-check --app image-check --version 1 >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do
  if curl -fsS -o /dev/null -H 'Authorization: token image-check' \
    "http://127.0.0.1:$replica_port/v1/app/image-check" 2>/dev/null; then
    log "Edgegap replica from its image: answering"
    break
  fi
  sleep 0.1
done
curl -fsS -o /dev/null -H 'Authorization: token image-check' \
  "http://127.0.0.1:$replica_port/v1/app/image-check" ||
  { log "the replica from its image does not answer"; exit 1; }
# The compose file, as the engine's compose tool reads it (placeholder values for its secrets).
compose_env="BEVYGAP_MATCHMAKER_PASSWORD=x BEVYGAP_GAMESERVER_PASSWORD=x BEVYGAP_CALLOUT_ISSUER=x LIGHTYEAR_PRIVATE_KEY=x BEVYGAP_VERSION=$tag"
if command -v podman-compose >/dev/null 2>&1; then
  env $compose_env podman-compose -f compose.yaml config >/dev/null
  log "compose.yaml validates (podman-compose config)"
elif "$engine" compose version >/dev/null 2>&1; then
  env $compose_env "$engine" compose -f compose.yaml config >/dev/null
  log "compose.yaml validates ($engine compose config)"
else
  log "compose.yaml not validated: no compose tool (pip install podman-compose)"
fi
log "every image builds, and its binary starts"
