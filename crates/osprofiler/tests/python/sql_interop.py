"""Referee side of the SQL (PostgreSQL, MySQL) interop tests.

Upstream's SQLAlchemy driver 4.4.0 creates its table as it always did, but
under SQLAlchemy 2 its writes are never committed and its reads use the
removed `select([table])` form. This script uses the driver itself for
what works (table creation, notify) and, where upstream is broken, the
smallest fix of its own code: a commit after notify, and `get_report` /
`list_traces` with `select(table)`, otherwise line for line upstream's.

  sql_interop.py create CS
      Upstream's driver creates the `data` table (if missing).
  sql_interop.py write CS
      Writes traces through profiler + upstream's driver; prints
      {"traces": {label: base_id}, "payloads": {base_id: [payload + project
      + service]}, "reports": {base_id: report}, "list_traces": [...]}.
  sql_interop.py report CS BASE_ID
      Prints upstream's get_report for BASE_ID.
"""

import json
import sys

from oslo_serialization import jsonutils
from osprofiler import notifier, profiler
from osprofiler.drivers import base


def driver(cs):
    return base.get_driver(cs, project="pyproj", service="pysvc", host="pyhost")


def report(cs, base_id):
    from sqlalchemy import select

    d = driver(cs)
    stmt = select(d._data_table).where(d._data_table.c.base_id == base_id)
    for n in d._conn.execute(stmt).mappings():
        d._append_results(n["trace_id"], n["parent_id"], n["name"], n["project"], n["service"],
                          n["host"], n["timestamp"], jsonutils.loads(n["data"]))
    return d._parse_results()


def list_traces(cs, fields=None):
    from sqlalchemy import select

    d = driver(cs)
    fields = set(fields or d.default_trace_fields)
    seen, result = set(), []
    for trace in d._conn.execute(select(d._data_table)).mappings():
        if trace["base_id"] not in seen:
            seen.add(trace["base_id"])
            result.append({k: v for k, v in trace.items() if k in fields})
    return result


class Boom(Exception):
    pass


@profiler.trace("helper", hide_args=False, hide_result=False)
def helper(x):
    return x * 2


@profiler.trace("failing")
def failing():
    raise Boom("it broke: ünïcødé ✓")


def write(cs):
    d = driver(cs)
    payloads = {}

    def recording_notify(info, **kwargs):
        p = dict(info)
        p["project"], p["service"] = d.project, d.service
        payloads.setdefault(p["base_id"], []).append(p)
        d.notify(info, **kwargs)

    notifier.set(recording_notify)
    traces = {}
    profiler.clean()
    traces["nested"] = profiler.init("SECRET_KEY").get_base_id()
    with profiler.Trace("wsgi", info={"request": {"path": "/ünï", "method": "GET"}}):
        with profiler.Trace("db", info={"db": {"statement": "SELECT 'ü'", "params": {}}}):
            pass
        helper(21)
        try:
            failing()
        except Boom:
            pass
    profiler.clean()
    traces["single"] = profiler.init("SECRET_KEY").get_base_id()
    profiler.start("lonely", info={"k": [1, None, {"x": 1.5}]})
    profiler.clean()
    d._conn.commit()  # upstream never commits under SQLAlchemy 2
    notifier.set(lambda info, **kw: None)
    out = {
        "traces": traces,
        "payloads": payloads,
        "reports": {b: report(cs, b) for b in traces.values()},
        "list_traces": list_traces(cs),
    }
    json.dump(out, sys.stdout)


def main():
    mode, cs = sys.argv[1], sys.argv[2]
    if mode == "create":
        d = driver(cs)
        d._conn.close()
    elif mode == "write":
        write(cs)
    elif mode == "report":
        json.dump(report(cs, sys.argv[3]), sys.stdout)
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
