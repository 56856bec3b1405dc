#!/usr/bin/env bash
# Installs the analysts' DuckDB (pinned in lake/requirements.txt, with its S3 extension) into
# a virtual environment shared by every clone, and prints its Python's path.
# Environment: TDB_TOOLS_CACHE (default ~/.cache/tdb-esms).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${TDB_TOOLS_CACHE:-$HOME/.cache/tdb-esms}/duckdb
stamp=$venv/.installed-$(sha256sum "$here/requirements.txt" | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "lake: installing DuckDB (lake/requirements.txt) into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  touch "$stamp"
fi
echo "$venv/bin/python"
