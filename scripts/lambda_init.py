#!/usr/bin/env python3
"""Cold initialisation time of Lambda bootstraps, measured locally.

For each run: a small runtime-API emulator listens on a free port, the bootstrap starts with
AWS_LAMBDA_RUNTIME_API pointing at it and the environment this process has, and the time
from starting the process until it asks for its first event (GET
/2018-06-01/runtime/invocation/next) is its initialisation. The process is then stopped:
no event is ever given. The reference, in the same run, is a Python process doing the
same (import, then ask for its first event), as a Python Lambda's runtime would.

    python3 scripts/lambda_init.py --runs 10 accounts=target/lambda/accounts/bootstrap ...

Prints one JSON object per line: name, runs, median_ms, max_ms.
"""

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time

NEXT = "/2018-06-01/runtime/invocation/next"

# What Lambda sets for every function (the Rust runtime refuses to start without them).
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "init-measure",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/init-measure",
    "AWS_LAMBDA_LOG_STREAM_NAME": "local",
}

PYTHON_REFERENCE = (
    "import os, urllib.request\n"
    "urllib.request.urlopen('http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '" + NEXT + "')\n"
)


def one_run(command: list[str], timeout: float) -> float:
    asked = threading.Event()
    seen: dict[str, float] = {}

    class Runtime(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            if self.path == NEXT and not asked.is_set():
                seen["at"] = time.perf_counter()
                asked.set()
            # No event: the measure ends at the request.
            self.send_response(503)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, **LAMBDA_ENV, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_port}")
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not asked.wait(timeout):
            process.kill()
            _, err = process.communicate()
            raise SystemExit(
                f"{command[0]} did not ask for an event within {timeout} s:\n{err.decode(errors='replace')[-2000:]}"
            )
        return (seen["at"] - started) * 1e3
    finally:
        process.kill()
        process.wait()
        server.shutdown()
        server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("bootstraps", nargs="+", help="name=path of a bootstrap")
    args = parser.parse_args()
    commands = [("python reference", [sys.executable, "-c", PYTHON_REFERENCE])]
    for item in args.bootstraps:
        name, _, path = item.partition("=")
        commands.append((name, [path]))
    for name, command in commands:
        # One run first to have the file in the page cache, as each measured run then does.
        one_run(command, args.timeout)
        times = [one_run(command, args.timeout) for _ in range(args.runs)]
        print(
            json.dumps(
                {
                    "name": name,
                    "runs": args.runs,
                    "median_ms": round(statistics.median(times), 1),
                    "max_ms": round(max(times), 1),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
