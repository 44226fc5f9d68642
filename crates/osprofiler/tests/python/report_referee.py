"""Referee side of the report interop tests (run with the .venv Python,
osprofiler 4.4.0).

  report_referee.py generate
      no input; prints one JSON line per scenario: {"name", "events"}, the
      payloads the real profiler handed to a notifier that adds "project"
      and "service" as the Redis driver does, in storage order (scenarios
      also drop, reorder or reverse them).

  report_referee.py report
      in:  {"events": [payload, ...]}  (JSON lines)
      out: {"report": Driver.get_report as the Redis driver builds it}

  report_referee.py sql-report
      in:  {"path": SQLite file, "base_id"}
      out: {"report": ...} as upstream's SQLAlchemyDriver.get_report builds
           it from the rows of base_id in table `data` (its own select()
           needs SQLAlchemy 1.x, so the loop is restated here on rows read
           with the sqlite3 module, in id order).

  report_referee.py sqlalchemy-write PATH
      in:  {"payloads": [...], "project", "service", "host"}
      writes each payload with the real SQLAlchemyDriver.notify into the
      SQLite file PATH; out: {"written": n}
"""

import copy
import json
import random
import sys
import time

from oslo_serialization import jsonutils
from osprofiler import notifier, profiler
from osprofiler.drivers import base


class Referee(base.Driver):
    """The base driver with Redis's get_report loop over given payloads."""

    def report(self, events):
        for n in events:
            self._append_results(
                n["trace_id"], n["parent_id"], n["name"], n["project"],
                n["service"], n["info"]["host"], n["timestamp"], n)
        return self._parse_results()

    def sql_report(self, rows):
        for (timestamp, _base_id, parent_id, trace_id, project, host,
             service, name, data) in rows:
            # SQLAlchemy's JSON column type decodes the text once, then
            # get_report's jsonutils.loads decodes the string it held.
            self._append_results(
                trace_id, parent_id, name, project, service, host,
                timestamp, jsonutils.loads(json.loads(data)))
        return self._parse_results()


def out(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


class Collector:
    def __init__(self):
        self.events = []
        self.project = "nova"
        self.service = "api"

    def __call__(self, info, context=None, **kwargs):
        data = copy.deepcopy(info)
        data["project"] = self.project
        data["service"] = self.service
        self.events.append(data)


@profiler.trace_cls("rpc", info={"kind": "cls"})
class Compute:
    def boot(self, flavor, **kwargs):
        time.sleep(0.001)
        with profiler.Trace("db", info={"db": {"statement": "SELECT 1", "params": {}}}):
            pass
        return "ok"

    def fail(self):
        raise KeyError("nope")

    def _private(self):
        return 1


def scenario(name, body, transform=None):
    col = Collector()
    notifier.set(col)
    profiler.clean()
    profiler.init("SECRET_KEY")
    body(col)
    profiler.clean()
    events = col.events
    if transform:
        events = transform(events)
    out({"name": name, "events": events})


def nested(col):
    with profiler.Trace("wsgi", info={"request": {"path": "/servers", "method": "POST"}}):
        time.sleep(0.002)
        c = Compute()
        c.boot("m1.small", image="cirros")
        try:
            c.fail()
        except KeyError:
            pass
        for i in range(3):
            with profiler.Trace("db", info={"db": {"statement": "SELECT %d" % i}}):
                with profiler.Trace("inner-call", info={"i": i}):
                    pass
        col.project, col.service = "neutron", "server"
        with profiler.Trace("neutron-port", info={"port": "p1"}):
            time.sleep(0.001)


def errors(col):
    for exc in (ValueError("bad value"), RuntimeError("ünïcode")):
        try:
            with profiler.Trace("failing", info={"n": 1}):
                time.sleep(0.001)
                raise exc
        except Exception:
            pass
    with profiler.Trace("fine"):
        pass


def unicode_names(col):
    with profiler.Trace("ñame-with-dash", info={"q": "日本語 ✓", "emoji": "😀"}):
        with profiler.Trace("ß", info={"x": [1, 2.5, None, True]}):
            pass


def flat_burst(col):
    # Many siblings in the same millisecond: order decided by the stable sort.
    with profiler.Trace("root"):
        for i in range(40):
            with profiler.Trace("leaf%d" % (i % 5), info={"i": i}):
                pass


def random_tree(seed):
    def body(col):
        rng = random.Random(seed)
        depth = [0]

        def walk():
            for _ in range(rng.randint(0, 3)):
                if depth[0] > 6:
                    return
                depth[0] += 1
                with profiler.Trace(rng.choice(["db", "rpc", "http", "wsgi-x"]),
                                    info={"r": rng.random()}):
                    if rng.random() < 0.2:
                        time.sleep(0.001)
                    walk()
                depth[0] -= 1
        with profiler.Trace("top"):
            walk()
    return body


def drop_some(seed):
    def transform(events):
        rng = random.Random(seed)
        return [e for e in events if rng.random() > 0.25]
    return transform


def shuffled(seed):
    def transform(events):
        rng = random.Random(seed)
        events = list(events)
        rng.shuffle(events)
        return events
    return transform


def generate():
    scenario("nested", nested)
    scenario("nested-reversed", nested, lambda e: list(reversed(e)))
    scenario("errors", errors)
    scenario("unicode", unicode_names)
    scenario("flat-burst", flat_burst)
    scenario("unmatched", nested, drop_some(1))
    scenario("only-stops", nested, lambda e: [x for x in e if x["name"].endswith("stop")])
    scenario("only-starts", nested, lambda e: [x for x in e if not x["name"].endswith("stop")])
    scenario("empty", lambda col: None)
    for seed in range(6):
        scenario("random-%d" % seed, random_tree(seed))
        scenario("random-%d-shuffled-dropped" % seed, random_tree(seed),
                 lambda e, s=seed: drop_some(s)(shuffled(s)(e)))


def sqlalchemy_write(path):
    from osprofiler.drivers.sqlalchemy_driver import SQLAlchemyDriver
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        d = SQLAlchemyDriver("sqlite:///" + path, project=req["project"],
                             service=req["service"], host=req["host"])
        for p in req["payloads"]:
            d.notify(p)
        d._conn.commit()
        d._conn.close()
        out({"written": len(req["payloads"])})


def main():
    mode = sys.argv[1]
    if mode == "generate":
        generate()
        return
    if mode == "sqlalchemy-write":
        sqlalchemy_write(sys.argv[2])
        return
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if mode == "report":
            out({"report": Referee("referee://").report(req["events"])})
        elif mode == "sql-report":
            import sqlite3
            conn = sqlite3.connect(req["path"])
            rows = conn.execute(
                "SELECT timestamp, base_id, parent_id, trace_id, project, host,"
                " service, name, data FROM data WHERE base_id = ? ORDER BY id",
                (req["base_id"],)).fetchall()
            conn.close()
            out({"report": Referee("referee://").sql_report(rows)})
        else:
            raise SystemExit("unknown mode %r" % mode)


if __name__ == "__main__":
    main()
