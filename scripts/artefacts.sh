#!/usr/bin/env bash
# Release artefacts, as SAM's `rust-cargolambda` build makes them: every function's
# `bootstrap` built by cargo-lambda (linking with Zig; both from pip, pinned), with the
# workspace's release profile (unwinding kept). Reports per function the zipped size and the
# cold initialisation time measured locally by scripts/lambda_init.py (process start until
# it asks the runtime API for its first event), with the local stack and resources of
# scripts/run-local.sh, started here when the gateway is not already up.
# Not part of CI: it is a release build of every function (about 40 minutes on 2 cores).
# Environment: RUNS (init runs per function, default 10), GATEWAY_ADDR (127.0.0.1:3000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tdb-esms/target}
venv=$HOME/.cache/tdb-esms/cargo-lambda
if [ ! -x "$venv/bin/cargo-lambda" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check cargo-lambda==1.9.2 ziglang==0.15.2
fi
export PATH=$venv/bin:$PATH

# The binaries the template deploys (infra/template.yaml, BuildProperties: Binary).
mapfile -t binaries < <(grep -o 'Binary: [a-z-]*' infra/template.yaml | cut -d' ' -f2)
build_started=$(date +%s)
cargo lambda build --release --locked --output-format zip \
  -p accounts -p collect -p validate -p remind -p restitute
build_seconds=$(( $(date +%s) - build_started ))

addr=${GATEWAY_ADDR:-127.0.0.1:3000}
run_local_pid=
stop_run_local() { [ -n "$run_local_pid" ] && kill "$run_local_pid" 2>/dev/null && wait "$run_local_pid" 2>/dev/null; true; }
trap stop_run_local EXIT
if ! curl -fsS "http://$addr/.well-known/jwks.json" >/dev/null 2>&1; then
  ESTABLISHMENTS=${ESTABLISHMENTS:-200} bash scripts/run-local.sh > localstack/.run/artefacts-run-local.log 2>&1 &
  run_local_pid=$!
  for _ in $(seq 600); do
    curl -fsS "http://$addr/.well-known/jwks.json" >/dev/null 2>&1 && break
    kill -0 "$run_local_pid" 2>/dev/null || { cat localstack/.run/artefacts-run-local.log >&2; exit 1; }
    sleep 1
  done
fi
# The union of every function's environment, as the template gives it in a deployment.
# shellcheck disable=SC1091
source localstack/.run/env
# shellcheck disable=SC1091
source localstack/.run/functions.env
# shellcheck disable=SC1091
source localstack/.run/accounts.env
JWT_PUBLIC_KEYS=$(curl -fsS "http://$addr/.well-known/jwks.json")
export JWT_PUBLIC_KEYS
export SES_CONFIGURATION_SET=${SES_CONFIGURATION_SET:-tdb-local}

out=$(mktemp -d)
args=()
for bin in "${binaries[@]}"; do
  mkdir -p "$out/$bin"
  python3 -m zipfile -e "$CARGO_TARGET_DIR/lambda/$bin/bootstrap.zip" "$out/$bin"
  chmod +x "$out/$bin/bootstrap"
  args+=("$bin=$out/$bin/bootstrap")
done
python3 scripts/lambda_init.py --runs "${RUNS:-10}" "${args[@]}" > "$out/init.jsonl"

python3 - "$out" "$CARGO_TARGET_DIR" "$build_seconds" "${binaries[@]}" <<'PY'
import json, os, sys
out, target, seconds, binaries = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
init = {r["name"]: r for r in map(json.loads, open(f"{out}/init.jsonl"))}
reference = init["python reference"]
print(f"\nrelease artefacts (cargo-lambda, x86_64, built in {seconds} s); init: median and max of "
      f"{reference['runs']} runs, the python reference {reference['median_ms']} ms median\n")
print("| function | zipped | bootstrap | init median | init max | ratio to python | target |")
print("|---|---|---|---|---|---|---|")
for b in binaries:
    zipped = os.path.getsize(f"{target}/lambda/{b}/bootstrap.zip") / 1e6
    raw = os.path.getsize(f"{out}/{b}/bootstrap") / 1e6
    r = init[b]
    size_cap, init_cap = (20, 150) if b.startswith("restitute") else (10, 50)
    ok = "met" if zipped < size_cap and r["median_ms"] < init_cap else "NOT met"
    print(f"| {b} | {zipped:.1f} MB | {raw:.1f} MB | {r['median_ms']} ms | {r['max_ms']} ms "
          f"| {r['median_ms'] / reference['median_ms']:.2f} | < {size_cap} MB, < {init_cap} ms: {ok} |")
PY
rm -rf "$out"
