#!/usr/bin/env bash
# Shared environment for CI scripts: a build cache outside the clone, reused between runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bevygap/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Backtraces help when a test fails in CI.
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
mkdir -p "$CARGO_TARGET_DIR"
# Tools set-up links here (nats-server when pip put it off PATH).
export BEVYGAP_BIN="$HOME/.cache/bevygap/bin"
mkdir -p "$BEVYGAP_BIN"
export PATH="$BEVYGAP_BIN:$PATH"
