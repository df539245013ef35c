#!/usr/bin/env bash
# Builds the docs book (docs/, mdBook) into docs/book. Installs mdBook from crates.io into the
# build cache's bin folder when it is missing. The test command checks the book's flags,
# variables and links without building it (example_game/tests/docs_book.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
if ! command -v mdbook >/dev/null 2>&1; then
  echo "[docs] installing mdbook (cargo install mdbook)"
  cargo install --locked --quiet --root "$(dirname "$BEVYGAP_BIN")" mdbook
fi
mdbook build docs
echo "[docs] built: docs/book/index.html"
