#!/usr/bin/env bash
# Walks the README's five-minute tour as a newcomer would, and checks what it prints: the run
# command (scripts/run-local.sh) in the background on a fresh local stack, then every command
# of the README's "A five-minute tour", copied from README.md as they are written. CI runs
# it after the tests (.ci/run), once the tests' stack is stopped: the tour needs the demo as
# `run-local.sh` makes it, untouched.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run=localstack/.run
mkdir -p $run
log=$run/tour-run-local.log
api=http://127.0.0.1:3000

if curl -fsS -o /dev/null "$api/.well-known/jwks.json" 2>/dev/null; then
  echo "tour: something already serves $api: stop it (the tour needs a fresh demo)" >&2
  exit 1
fi
bash scripts/run-local.sh > "$log" 2>&1 &
runner=$!
# run-local.sh stops its gateway, and the stack it started, on TERM.
trap 'kill -TERM $runner 2>/dev/null; wait $runner 2>/dev/null || true' EXIT
for _ in $(seq 1 900); do
  grep -q "serving on" "$log" && break
  if ! kill -0 $runner 2>/dev/null; then
    echo "tour: run-local.sh stopped before serving:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  sleep 1
done
grep -q "serving on" "$log" || { echo "tour: nothing served after 15 minutes" >&2; exit 1; }

# The tour's shell blocks, in order, as the README gives them.
python3 - README.md > $run/tour-commands.sh <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
start = text.index("### A five-minute tour")
end = re.compile(r"\n##+ ").search(text, start + 1).start()
print("\n".join(re.findall(r"```sh\n(.*?)```", text[start:end], re.S)))
PY
workdir=$(mktemp -d)
commands=$(realpath $run/tour-commands.sh)
started=$(date +%s)
(cd "$workdir" && timeout 600 bash -e "$commands") > $run/tour-output.txt 2>&1 || {
  echo "tour: a command of the tour failed:" >&2
  tail -n 40 $run/tour-output.txt >&2
  exit 1
}
echo "tour: walked in $(( $(date +%s) - started )) s; checking what it printed" >&2

# What a newcomer should see, in this order.
python3 - $run/tour-output.txt "$workdir/occupation.svg" <<'PY'
import re, sys
out = open(sys.argv[1], encoding="utf-8").read()
expected = [  # regular expressions
    r"in_progress",                         # the Gestionnaire's questionnaire
    r'"previous": \d',                      # last year's answer beside the item
    r"capacite_permanente_installee",       # the typing slip's blocking rule
    r"evolution_cap_inst_perm",             # and its year-on-year warning
    r'"score"',                             # an outlier against last year's peers
    r"cannot_validate",                     # the validation refused
    r"(?m)^\[\]$",                           # no violation after the correction
    r"(?m)^validated$",
    r'"validated_rate"',                    # the ARS's progress
    r'"status": "reopened"',                # a structure the ARS reopened
    r"(?m)^reopened$",                      # the tour's reopening
    r"a été rouvert",                       # its e-mail
    r"(?m)^validated$",                     # validated again
    r"2025-09-01",                          # the campaign functions on 1 September
    r'"expected": \d+',                     # the closures' counts
    r'"id": "taux_occupation_permanent"',
    r'"rank_national": \d',                 # the EHPAD's rank among its peers
    r'"previous": \d',                      # and last year's value
    r"Région;Département;Catégorie",        # the region's export
]
at = 0
for e in expected:
    found = re.compile(e).search(out, at)
    if not found:
        sys.exit(f"tour: expected /{e}/ after character {at} of the tour's output")
    at = found.end()
svg = open(sys.argv[2], encoding="utf-8").read()
if not (svg.startswith("<svg") and "occupation" in svg):
    sys.exit("tour: occupation.svg is not the indicator's chart")
print(f"tour: {len(expected)} expected outputs seen, in order; the chart is an SVG")
PY
rm -rf "$workdir"
