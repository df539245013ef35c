#!/usr/bin/env bash
# Fuzzes every decoder that reads what peers send, for BEVYGAP_FUZZ_SECS seconds each (60 by
# default): KV records, connect-token user data, the seed JSON request, simplenet messages, the
# Edgegap context and API answers, allocation and removal records.
#
# The targets are tests built on bevygap_test_support::fuzz, a mutation fuzzer on stable Rust
# (cargo-fuzz needs a nightly toolchain, which this project does not require). The test command
# runs each target briefly (BEVYGAP_FUZZ_CASES, 20,000 inputs); this script runs them long.
# A failure prints the input and BEVYGAP_FUZZ_SEED=… to replay it:
#   BEVYGAP_FUZZ_SEED=123 cargo test -p bevygap_shared --test fuzz_inputs -- --nocapture
#
#   bash ci/fuzz.sh            # 60 s per target
#   BEVYGAP_FUZZ_SECS=600 bash ci/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
export BEVYGAP_FUZZ_SECS="${BEVYGAP_FUZZ_SECS:-60}"
echo "[fuzz] ${BEVYGAP_FUZZ_SECS} s per target (release build)"
failed=0
for package in bevygap_shared bevygap_server_plugin bevygap_matchmaker; do
  # One target at a time, so each gets a whole core and its own time budget.
  if ! cargo test --release --locked -p "$package" --test fuzz_inputs -- --test-threads 1 --nocapture \
    > "${TMPDIR:-/tmp}/bevygap-fuzz-$package.log" 2>&1; then
    failed=1
  fi
  grep -E '^fuzz `|^test |panicked|^  (hex|text):|left:|right:|test result' "${TMPDIR:-/tmp}/bevygap-fuzz-$package.log" || true
done
if [ "$failed" = 1 ]; then
  echo "[fuzz] a target failed: replay it with the BEVYGAP_FUZZ_SEED printed above"
  exit 1
fi
echo "[fuzz] every target held"
