"""Writes one trace of N spans (default 30,000) into Redis the way Python
osprofiler's Redis driver stores it (`LPUSH osprofiler_opt:<base_id>` of
`jsonutils.dumps(payload)`), for timing `osprofiler trace show --json`.

Usage:
  bench_show_trace.py [--spans N] [--url redis://127.0.0.1:6379/15]
      writes the trace and prints its base id;
  bench_show_trace.py --time OUR_CLI [--runs N] [--python-runs N]
      also times `trace show --json` of it with OUR_CLI and with Python's
      CLI (next to this interpreter), checks both print the same bytes,
      prints `show/ours: <ms> ms` and `show/python: <ms> ms` (medians of
      wall time) and deletes the trace. The shape: one `wsgi` root per request, each with
nested `rpc`, `db` (statements and params) and traced-function spans, a
few of them failing, so the report exercises every kind of `info`.
"""
import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
import uuid

import redis
from oslo_serialization import jsonutils


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=30_000)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--time", metavar="OUR_CLI")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--python-runs", type=int, default=3)
    args = parser.parse_args()

    client = redis.Redis.from_url(args.url)
    base_id = str(uuid.uuid4())
    key = "osprofiler_opt:" + base_id
    clock = datetime.datetime(2026, 11, 21, 9, 31, 31, 298649)
    step = datetime.timedelta(microseconds=137)
    pipe = client.pipeline(transaction=False)
    pending = 0

    def emit(name, trace_id, parent_id, info):
        nonlocal clock, pending
        clock += step
        data = {"name": name, "base_id": base_id, "trace_id": trace_id,
                "parent_id": parent_id,
                "timestamp": clock.strftime("%Y-%m-%dT%H:%M:%S.%f"),
                "info": dict(info, host="compute-1"),
                "project": "nova", "service": "api"}
        pipe.lpush(key, jsonutils.dumps(data))
        pending += 1
        if pending >= 5_000:
            pipe.execute()
            pending = 0

    spans = 0
    request = 0
    while spans < args.spans:
        request += 1
        root = str(uuid.uuid4())
        emit("wsgi-start", root, base_id, {"request": {
            "path": f"/v2.1/servers/{request}", "query": "", "method": "GET",
            "scheme": "http"}})
        spans += 1
        parent = root
        # A chain of up to 8 nested calls under each request.
        chain = []
        for depth in range(min(8, args.spans - spans)):
            span = str(uuid.uuid4())
            if depth % 3 == 0:
                name, start = "rpc", {"function": {
                    "name": "nova.compute.api.API.get", "args": f"({request}, {depth})",
                    "kwargs": "{'want_objects': True}"}}
            elif depth % 3 == 1:
                name, start = "db", {"db": {
                    "statement": "SELECT instances.id, instances.uuid FROM instances "
                                 "WHERE instances.uuid = %(uuid_1)s AND déjà = 'vu'",
                    "params": {"uuid_1": span, "limit": 1, "ratio": 0.25}}}
            else:
                name, start = "compute", {"function": {
                    "name": "nova.compute.manager.ComputeManager._sync", "args": "()",
                    "kwargs": "{}"}}
            emit(f"{name}-start", span, parent, start)
            spans += 1
            chain.append((name, span, parent))
            parent = span
        for i, (name, span, parent) in enumerate(reversed(chain)):
            if name == "db" and request % 7 == 0:
                stop = {"etype": "OperationalError", "message": "(2006, 'gone away')"}
            elif name == "rpc":
                stop = {"function": {"result": "<Instance uuid=%s>" % span}}
            else:
                stop = {}
            emit(f"{name}-stop", span, parent, stop)
        emit("wsgi-stop", root, base_id, {})
    if pending:
        pipe.execute()
    if not args.time:
        print(base_id)
        return
    try:
        python_cli = os.path.join(os.path.dirname(sys.executable), "osprofiler")
        show = ["trace", "show", "--json", base_id, "--connection-string", args.url]
        ours, ours_out = timed([args.time] + show, args.runs)
        python, python_out = timed([python_cli] + show, args.python_runs)
        if ours_out != python_out:
            sys.exit("trace show --json: our output differs from Python's")
        print(f"show/ours: {ours * 1e3:.1f} ms")
        print(f"show/python: {python * 1e3:.1f} ms")
        print(f"show/output: {len(ours_out)} bytes, identical")
    finally:
        client.delete(key)


def timed(command, runs):
    """Median wall time of `runs` runs (after one warm-up) and the output."""
    output = subprocess.run(command, check=True, capture_output=True).stdout
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times), output


if __name__ == "__main__":
    main()
