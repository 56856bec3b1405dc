#!/usr/bin/env bash
# Installs (pinned, cached) and starts the local AWS stack without Docker:
#   - LocalStack in host mode for S3 and SES (Python venv from requirements.lock),
#   - Amazon's DynamoDB Local (from the amplify-dynamodb-simulator npm package, on Java 17).
# Waits until both answer, then writes the environment to use into localstack/.run/env.
# Running it twice is harmless: what already runs and answers is left alone.
# Environment: TDB_STACK_CACHE (install cache, shared by every clone, default ~/.cache/tdb-esms/stack),
#              LOCALSTACK_PORT (4566), DYNAMODB_PORT (8000).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${TDB_STACK_CACHE:-$HOME/.cache/tdb-esms/stack}
run=$here/.run
ls_port=${LOCALSTACK_PORT:-4566}
ddb_port=${DYNAMODB_PORT:-8000}
python=${TDB_PYTHON:-python3}
mkdir -p "$cache" "$run"

say() { printf 'localstack: %s\n' "$*" >&2; }

# Of the files' contents only: every clone, wherever it lives, shares one install.
fingerprint() { cat "$@" | sha256sum | cut -c1-16; }

install_localstack() {
  local stamp="$cache/venv/.installed-$(fingerprint "$here/requirements.lock")"
  [ -f "$stamp" ] && return
  say "installing LocalStack (pinned in requirements.lock) into $cache/venv"
  rm -rf "$cache/venv"
  "$python" -m venv "$cache/venv"
  "$cache/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$here/requirements.lock"
  touch "$stamp"
}

install_dynamodb() {
  local stamp="$cache/dynamodb/.installed-$(fingerprint "$here/package.json" "$here/package-lock.json")"
  [ -f "$stamp" ] && return
  say "installing DynamoDB Local (npm amplify-dynamodb-simulator) into $cache/dynamodb"
  rm -rf "$cache/dynamodb"
  mkdir -p "$cache/dynamodb"
  cp "$here/package.json" "$here/package-lock.json" "$cache/dynamodb/"
  (cd "$cache/dynamodb" && npm ci --silent --no-audit --no-fund --ignore-scripts)
  touch "$stamp"
}

localstack_up() { curl -fsS "http://127.0.0.1:$ls_port/_localstack/health" 2>/dev/null | grep -q '"s3": "\(available\|running\)"'; }
dynamodb_up() { curl -s -o /dev/null "http://127.0.0.1:$ddb_port/" 2>/dev/null; }

alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

start_localstack() {
  if localstack_up; then say "LocalStack already answers on $ls_port"; return; fi
  alive localstack && { say "LocalStack (pid $(cat "$run/localstack.pid")) is starting"; return; }
  say "starting LocalStack on 127.0.0.1:$ls_port"
  (
    cd "$run"
    DISABLE_EVENTS=1 SERVICES=s3,ses,secretsmanager,sqs,sns GATEWAY_LISTEN="127.0.0.1:$ls_port" \
      LOCALSTACK_VOLUME_DIR="$run/localstack-volume" SKIP_SSL_CERT_DOWNLOAD=1 \
      S3_SKIP_SIGNATURE_VALIDATION=0 \
      setsid "$cache/venv/bin/python" -m localstack.runtime.main >"$run/localstack.log" 2>&1 &
    echo $! >"$run/localstack.pid"
  )
}

start_dynamodb() {
  if dynamodb_up; then say "DynamoDB Local already answers on $ddb_port"; return; fi
  alive dynamodb && { say "DynamoDB Local (pid $(cat "$run/dynamodb.pid")) is starting"; return; }
  local emulator="$cache/dynamodb/node_modules/amplify-dynamodb-simulator/emulator"
  say "starting DynamoDB Local on 127.0.0.1:$ddb_port"
  (
    cd "$emulator"
    setsid java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port "$ddb_port" >"$run/dynamodb.log" 2>&1 &
    echo $! >"$run/dynamodb.pid"
  )
}

wait_for() {
  local name=$1 check=$2 log=$3
  for _ in $(seq 1 120); do
    if $check; then say "$name is up"; return; fi
    sleep 1
  done
  say "$name did not come up within 120 s; last lines of $log:"
  tail -n 30 "$log" >&2 || true
  exit 1
}

install_localstack
install_dynamodb
start_localstack
start_dynamodb
wait_for LocalStack localstack_up "$run/localstack.log"
wait_for "DynamoDB Local" dynamodb_up "$run/dynamodb.log"

cat >"$run/env" <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$ls_port
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$ddb_port
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=eu-west-3
export AWS_DEFAULT_REGION=eu-west-3
ENV
say "environment written to $run/env (source it)"
