#!/usr/bin/env bash
# Fuzzes every served function from its OpenAPI description with schemathesis (pinned), through
# the local gateway, with a valid access token: no 5xx, and no answer outside the description
# (status, content type, body schema). Bounded: FUZZ_EXAMPLES examples per operation (25).
# Expects the local stack to run (localstack/start.sh); scripts/test.sh calls it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tdb-esms/target}
run=localstack/.run
# shellcheck disable=SC1091
source $run/env

venv=${TDB_TOOLS_CACHE:-$HOME/.cache/tdb-esms}/schemathesis
version=4.32.5
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -q "$version"; then
  echo "fuzz: installing schemathesis $version into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

cargo build --locked -q -p tdb-cli -p tdb-gateway --features tdb-cli/lake
tdb=$CARGO_TARGET_DIR/debug/tdb
stack=tdb-fuzz-$$
"$tdb" provision --stack-name "$stack" > $run/fuzz.env
# shellcheck disable=SC1091
source $run/fuzz.env
"$tdb" generate --establishments 60 --out $run/fuzz-campaign > /dev/null
"$tdb" demo --from $run/fuzz-campaign > /dev/null
key=$run/fuzz-signing-key.pem
[ -s "$key" ] || "$tdb" keygen > "$key"

# Real FINESS numbers and territory codes, so that part of the generated requests reach the
# handlers' logic instead of stopping at a wrong Luhn key.
python3 - "$run/fuzz-campaign/referential.json" > $run/fuzz-schemathesis.toml <<'PY'
import json, sys
referential = json.load(open(sys.argv[1]))
finess = sorted(referential["entities"])[:10] + sorted(referential["establishments"])[:30]
departements = sorted({f[:2] for f in finess if not f.startswith("9")})
values = lambda xs: "[" + ", ".join(json.dumps(x) for x in xs) + "]"
print(f"[dictionaries.finess]\nvalues = {values(finess)}")
print(f"[dictionaries.departement]\nvalues = {values(departements)}")
print("[parameters]")
for key, dictionary in [("path.finess", "finess"), ("query.og", "finess"), ("path.og", "finess"),
                        ("query.departement", "departement")]:
    print(f'"{key}" = {{ dictionary = "{dictionary}", probability = 0.7 }}')
PY

addr=127.0.0.1:${FUZZ_PORT:-3100}
base=http://$addr
RUST_LOG=${FUZZ_LOG:-warn} "$CARGO_TARGET_DIR/debug/tdb-gateway" --addr "$addr" --stack-name "$stack" --signing-key "$key" &
gateway=$!
trap 'kill $gateway 2>/dev/null; wait $gateway 2>/dev/null' EXIT
for _ in $(seq 1 50); do curl -fs -o /dev/null "$base/.well-known/jwks.json" && break; sleep 0.2; done

token=$(curl -fsS "$base/auth/login" -H 'content-type: application/json' \
  -d '{"email": "national@demo.tdb-esms.test", "password": "une visite du tableau de bord"}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

status=0
for description in /accounts/openapi.json /questionnaires/openapi.json /validation/openapi.json /reminders/openapi.json /restitutions/openapi.json; do
  echo "fuzz: $base$description" >&2
  timeout 900 "$venv/bin/schemathesis" --config-file $run/fuzz-schemathesis.toml \
    run "$base$description" --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${FUZZ_EXAMPLES:-25}" --workers 1 --seed 2025 --no-color || status=$?
done
exit $status
