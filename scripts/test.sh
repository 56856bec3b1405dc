#!/usr/bin/env bash
# Runs every test, unit and integration, against the local AWS stack it starts itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tdb-esms/target}
bash localstack/start.sh
# shellcheck disable=SC1091
source localstack/.run/env
cargo test --workspace --all-targets --locked
