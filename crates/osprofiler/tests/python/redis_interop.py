"""Referee side of the Redis interop tests (run with the .venv Python).

  redis_interop.py write CONNECTION_STRING
      Writes traces with Python osprofiler 4.4.0 (its own Redis driver,
      filter_error_trace on) plus one trace in the legacy per-key layout,
      then prints one JSON object on stdout:
        {"traces": {label: base_id}, "stored": {base_id: [payloads]},
         "list_traces": [...], "list_traces_fields": [...],
         "list_error_traces": [...], "reports": {base_id: report}}
      Every list is the Python driver's own answer, for the whole database.

  redis_interop.py report CONNECTION_STRING BASE_ID
      Prints Python's driver.get_report(BASE_ID).
"""

import json
import sys

from oslo_serialization import jsonutils
from osprofiler import notifier, profiler
from osprofiler.drivers import base

CONF = {"profiler": type("P", (), {"filter_error_trace": True})()}


def driver(cs):
    # A fresh driver per report: Python's drivers accumulate results.
    return base.get_driver(cs, project="pyproj", service="pysvc", host="pyhost", conf=CONF)


class Boom(Exception):
    pass


@profiler.trace("helper", hide_args=False, hide_result=False)
def helper(x, y=2):
    return x * y


@profiler.trace("failing")
def failing():
    raise Boom("it broke: ünïcødé ✓")


@profiler.trace_cls("rpc")
class Service:
    def call(self, value):
        return helper(value)

    def explode(self):
        raise ValueError("class method failed")


def new_trace():
    profiler.clean()
    return profiler.init("SECRET_KEY").get_base_id()


def write(cs):
    notifier.set(notifier.create(cs, project="pyproj", service="pysvc", host="pyhost", conf=CONF))
    traces = {}

    # 1. Nested spans, errors inside (function, class method), unicode,
    #    unbalanced start/stop calls.
    traces["nested"] = new_trace()
    with profiler.Trace("wsgi", info={"request": {"path": "/servers/ünï", "method": "GET"}}):
        with profiler.Trace("db", info={"db": {"statement": "SELECT 'ü'", "params": {}}}):
            pass
        helper(3, y=4)
        try:
            failing()
        except Boom:
            pass
        svc = Service()
        svc.call(5)
        try:
            svc.explode()
        except ValueError:
            pass
        profiler.start("orphan", info={"note": "never stopped"})
        profiler.stop()  # closes orphan
        profiler.start("unbalanced", info={"note": "left open"})
    # The guard's stop closed the innermost open span ("unbalanced"), as
    # Python's stop() always does; one more stop closes wsgi, and the last
    # one has nothing open (ignored).
    profiler.stop()
    profiler.stop()

    # 2. A clean trace with a Trace guard that raises.
    traces["guard_error"] = new_trace()
    try:
        with profiler.Trace("compute", info={"x": 1}):
            raise KeyError("missing")
    except KeyError:
        pass

    # 3. A trace without errors and a single span.
    traces["plain"] = new_trace()
    with profiler.Trace("only", info={"k": [1, 2, {"n": None}]}):
        pass

    # 4. A trace with a single event (list of length 1: not listed by
    #    list_traces, LINDEX 1 is nil).
    traces["single"] = new_trace()
    profiler.start("lonely")
    profiler.clean()

    # 5. Legacy layout, written by hand: one key per event.
    import uuid
    legacy = str(uuid.uuid4())
    traces["legacy"] = legacy
    d = driver(cs)
    t1, t2 = str(uuid.uuid4()), str(uuid.uuid4())
    events = [
        ("api-start", t1, legacy, "2024-05-01T10:00:00.000100", {"host": "old"}),
        ("db-start", t2, t1, "2024-05-01T10:00:00.002000", {"host": "old", "db": {"statement": "x"}}),
        ("db-stop", t2, t1, "2024-05-01T10:00:00.004999", {"host": "old"}),
        ("api-stop", t1, legacy, "2024-05-01T10:00:00.010000", {"host": "old", "etype": "RuntimeError", "message": "m"}),
    ]
    for name, trace_id, parent_id, ts, info in events:
        payload = {"name": name, "base_id": legacy, "trace_id": trace_id, "parent_id": parent_id,
                   "timestamp": ts, "info": info, "project": "oldproj", "service": "oldsvc"}
        d.db.set("osprofiler:" + legacy + "_" + trace_id + "_" + ts, jsonutils.dumps(payload))
    profiler.clean()

    d = driver(cs)
    stored = {}
    for label, base_id in traces.items():
        raw = list(d.db.lrange("osprofiler_opt:" + base_id, 0, -1))
        raw += [d.db.get(k) for k in d.db.scan_iter(match="osprofiler:" + base_id + "*")]
        stored[base_id] = [json.loads(r) for r in raw]
    out = {
        "traces": traces,
        "stored": stored,
        "list_traces": driver(cs).list_traces(),
        "list_traces_fields": driver(cs).list_traces({"base_id", "name", "trace_id", "info"}),
        "list_error_traces": driver(cs).list_error_traces(),
        "reports": {b: driver(cs).get_report(b) for b in traces.values()},
    }
    json.dump(out, sys.stdout)


def main():
    if sys.argv[1] == "write":
        write(sys.argv[2])
    elif sys.argv[1] == "report":
        json.dump(driver(sys.argv[2]).get_report(sys.argv[3]), sys.stdout)
    else:
        raise SystemExit("unknown mode " + sys.argv[1])


if __name__ == "__main__":
    main()
