#!/usr/bin/env python3
"""DuckDB over the lake in S3, as an analyst reads it (docs/lake.md).

Reads each campaign's manifest, makes a view of every table over the files of the current
snapshots, then runs the SQL given and prints its rows as JSON lines. The AWS environment is the functions' own:
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, and AWS_ENDPOINT_URL for the local stack.

    python3 lake/duckdb_lake.py --bucket "$LAKE_BUCKET" "SELECT count(*) FROM indicators"
"""

import argparse
import json
import os
import pathlib
import sys
import time
from urllib.parse import urlparse

import duckdb
import duckdb_ext


def connect(bucket: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    extension = (
        pathlib.Path(list(duckdb_ext.__path__)[0])
        / "extensions"
        / f"v{duckdb.__version__}"
        / "linux_amd64"
        / "httpfs.duckdb_extension"
    )
    con.execute(f"LOAD '{extension}'")
    options = {
        "TYPE": "s3",
        "KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "SECRET": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "REGION": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "eu-west-3"),
    }
    if os.environ.get("AWS_SESSION_TOKEN"):
        options["SESSION_TOKEN"] = os.environ["AWS_SESSION_TOKEN"]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        url = urlparse(endpoint)
        options.update(ENDPOINT=url.netloc, URL_STYLE="path", USE_SSL=str(url.scheme == "https").lower())
    settings = ", ".join(f"{k} {quote(v) if k not in ('TYPE', 'USE_SSL') else v}" for k, v in options.items())
    con.execute(f"CREATE SECRET lake ({settings})")
    manifests = con.execute(
        f"SELECT content FROM read_text('s3://{bucket}/lake/_manifests/*.json')"
    ).fetchall()
    # As `tdb lake sql` sees the lake: `<table>_<year>` for one campaign's current
    # snapshot, `<table>` for every campaign, with a `campaign` column, columns put
    # together by name.
    by_table: dict[str, list[tuple[int, str]]] = {}
    for (content,) in sorted(manifests, key=lambda m: json.loads(m[0])["campaign"]):
        manifest = json.loads(content)
        campaign = manifest["campaign"]
        for table, listed in manifest["tables"].items():
            if not listed["files"]:
                continue
            paths = ", ".join(quote(f"s3://{bucket}/{f}") for f in listed["files"])
            name = f"{table}_{campaign}"
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{paths}], hive_partitioning = false)"
            )
            by_table.setdefault(table, []).append((campaign, name))
    for table, parts in by_table.items():
        union = " UNION ALL BY NAME ".join(
            f"SELECT *, CAST({campaign} AS BIGINT) AS campaign FROM {name}" for campaign, name in parts
        )
        con.execute(f"CREATE VIEW {table} AS {union}")
    return con


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", default=os.environ.get("LAKE_BUCKET"))
    parser.add_argument(
        "--repeat", type=int, default=0,
        help="run the query this many times and print each run's seconds instead of its rows",
    )
    parser.add_argument("sql")
    args = parser.parse_args()
    if not args.bucket:
        parser.error("--bucket or LAKE_BUCKET is required")
    con = connect(args.bucket)
    if args.repeat:
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            con.execute(args.sql).fetchall()
            seconds.append(time.perf_counter() - started)
        print(json.dumps({"seconds": seconds}))
        return 0
    cursor = con.execute(args.sql)
    names = [d[0] for d in cursor.description]
    for row in cursor.fetchall():
        print(json.dumps(dict(zip(names, row)), default=str, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
