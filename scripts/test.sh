#!/usr/bin/env bash
# Runs every test against the local AWS stack it starts itself: unit and integration tests
# (the browser test drives Debian's Chromium, installed here when missing), then the fuzzing
# of every served API from its OpenAPI description (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tdb-esms/target}
if ! command -v "${CHROMIUM:-chromium}" >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "test: installing Chromium (Debian package) for the browser test" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test: the browser test needs Chromium: sudo apt-get install chromium (or set CHROMIUM)" >&2
    exit 1
  fi
fi
bash localstack/start.sh
# DuckDB for the lake tests that compare it with DataFusion (docs/lake.md).
TDB_DUCKDB_PYTHON=$(bash lake/install.sh)
export TDB_DUCKDB_PYTHON
# shellcheck disable=SC1091
source localstack/.run/env
cargo test --workspace --all-targets --locked
bash scripts/fuzz.sh
