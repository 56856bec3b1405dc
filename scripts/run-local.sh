#!/usr/bin/env bash
# Runs the platform locally and ends with the API serving in the foreground:
#   local AWS stack (installed on first use) -> the template's resources -> a generated campaign
#   told as a demo (last year's closed, this year's in every state, a login per role)
#   -> every function's router on one address (tdb-gateway).
# Ctrl-C stops the gateway and the stack this script started. Running it again is harmless.
# Environment: ESTABLISHMENTS (campaign size, default 2000), GATEWAY_ADDR (127.0.0.1:3000),
#              CAMPAIGN_DATE (the day the campaign functions believe it is, default 2025-07-15:
#              the 2025 campaign's fiabilisation; empty for today),
#              WEB_ORIGINS (browser origins allowed by CORS, default http://localhost:8080).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tdb-esms/target}
addr=${GATEWAY_ADDR:-127.0.0.1:3000}
base=http://$addr
run=localstack/.run

# Stop only what this run started: a stack that was already up stays up.
stack_was_up=false
if curl -fsS "http://127.0.0.1:${LOCALSTACK_PORT:-4566}/_localstack/health" >/dev/null 2>&1 \
  && curl -s -o /dev/null "http://127.0.0.1:${DYNAMODB_PORT:-8000}/" 2>/dev/null; then
  stack_was_up=true
fi
cleanup() {
  [ -n "${gateway_pid:-}" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  if [ "$stack_was_up" = false ]; then bash localstack/stop.sh; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash localstack/start.sh
# shellcheck disable=SC1091
source $run/env
# Debug builds, in the target folder the tests use: no release build on this path. The demo
# writes last year's snapshot into the lake: `tdb` with the lake feature.
cargo build --locked -p tdb-cli -p tdb-gateway --features tdb-cli/lake
tdb=$CARGO_TARGET_DIR/debug/tdb
"$tdb" provision --stack-name tdb-local > $run/functions.env
# shellcheck disable=SC1091
source $run/functions.env
campaign=$run/campaign-${ESTABLISHMENTS:-2000}
# Generated again each time (deterministic, about a second): a campaign kept from an older
# questionnaire definition would no longer load.
"$tdb" generate --establishments "${ESTABLISHMENTS:-2000}" --out "$campaign"
"$tdb" demo --from "$campaign"
# The accounts function's signing key: made once, kept in the git-ignored run folder.
key=$run/jwt-signing-key.pem
[ -s "$key" ] || "$tdb" keygen > "$key"
# The accounts function's settings as the gateway gives them (for `tdb admin`); the gateway
# stores the key in the local Secrets Manager under this name.
cat > $run/accounts.env <<ENV
export JWT_SIGNING_KEY_SECRET=tdb-local-jwt-signing-key
export JWT_ISSUER=$base
export JWT_AUDIENCE=tdb-esms
export PUBLIC_URL=$base
ENV

cat <<EOF

The API answers on $base (every function's routes from infra/template.yaml).
  OpenAPI of the accounts function: $base/accounts/openapi.json
  OpenAPI of the collect function: $base/questionnaires/openapi.json
  OpenAPI of the validate function: $base/validation/openapi.json
  OpenAPI of the remind function: $base/reminders/openapi.json
  OpenAPI of the restitute function: $base/restitutions/openapi.json
  E-mails sent (activation links...): curl -s $AWS_ENDPOINT_URL/_aws/ses
  More administrators (while the gateway runs):
    source $run/env; source $run/functions.env; source $run/accounts.env
    $tdb admin --email ... --last-name ... --first-name ... --role region:84

Try it:
  curl -s $base/.well-known/openid-configuration
  TOKEN=\$(curl -s $base/auth/login -H 'content-type: application/json' \\
    -d '{"email": "ape-esms@demo.tdb-esms.test", "password": "une visite du tableau de bord"}' \\
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  curl -s $base/accounts/me -H "authorization: Bearer \$TOKEN"

Ctrl-C stops the gateway$( [ "$stack_was_up" = false ] && echo " and the local AWS stack" ).
EOF
campaign_date=${CAMPAIGN_DATE-2025-07-15}
GATEWAY_ADDR=$addr "$CARGO_TARGET_DIR/debug/tdb-gateway" --stack-name tdb-local --signing-key "$key" \
  ${campaign_date:+--campaign-date "$campaign_date"} &
gateway_pid=$!
wait "$gateway_pid"
