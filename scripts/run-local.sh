#!/usr/bin/env bash
# Runs the system locally: starts the local AWS stack, creates the template's resources and
# loads a generated campaign into it. ESTABLISHMENTS (default 2000) sets the campaign size.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tdb-esms/target}
bash localstack/start.sh
# shellcheck disable=SC1091
source localstack/.run/env
cargo build --release --locked -p tdb-cli
tdb=$CARGO_TARGET_DIR/release/tdb
"$tdb" provision --stack-name tdb-local > localstack/.run/functions.env
# shellcheck disable=SC1091
source localstack/.run/functions.env
cat localstack/.run/functions.env
out=localstack/.run/campaign
"$tdb" generate --establishments "${ESTABLISHMENTS:-2000}" --out "$out"
"$tdb" load --from "$out"
# The accounts function's settings: a signing key made once and kept in the git-ignored
# run folder, and a first national administrator whose activation e-mail LocalStack keeps.
key=localstack/.run/jwt-signing-key.pem
[ -s "$key" ] || "$tdb" keygen > "$key"
cat > localstack/.run/accounts.env <<ENV
export JWT_SIGNING_KEY="\$(cat $key)"
export JWT_ISSUER=http://localhost/tdb-esms
export JWT_AUDIENCE=tdb-esms
export PUBLIC_URL=http://localhost:3000
ENV
# shellcheck disable=SC1091
source localstack/.run/accounts.env
"$tdb" admin --email admin@tdb-esms.test --last-name Admin --first-name National --role national
echo "Activation link of admin@tdb-esms.test: curl -s $AWS_ENDPOINT_URL/_aws/ses (the e-mail's #jeton=...)"
echo "The local stack runs (stop it with: bash localstack/stop.sh). Environment: source localstack/.run/env localstack/.run/functions.env localstack/.run/accounts.env"
