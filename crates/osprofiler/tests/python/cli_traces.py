"""Writes traces with the real Python osprofiler 4.4.0 into Redis.

Usage: cli_traces.py REDIS_URL (used by the CLI tests)
Prints one JSON line: {"ok": <base id>, "error": <base id of the failing trace>}.
"""
import json
import sys

from oslo_config import cfg
from osprofiler import notifier, opts, profiler

conf = cfg.ConfigOpts()
opts.set_defaults(conf)
conf([], project="cli-test")
conf.set_override("filter_error_trace", True, group="profiler")


@profiler.trace_cls("rpc")
class Compute:
    def build(self, name):
        with profiler.Trace("db", info={"db": {"statement": "INSERT INTO servers VALUES (?)", "params": [name]}}):
            pass
        return self.schedule(name)

    def schedule(self, name):
        return name.upper()

    def explode(self):
        raise ValueError("disk full </script><img src=x onerror=alert(1)>")


def trace(service, fail):
    notifier.set(notifier.create(sys.argv[1], project="nova", service=service, host="node-1", conf=conf))
    p = profiler.init("SECRET_KEY")
    request = {"request": {"path": "/servers", "query": "", "method": "POST", "scheme": "http"}}
    with profiler.Trace("wsgi", info=request):
        Compute().build("vm-é")
        if fail:
            try:
                Compute().explode()
            except ValueError:
                pass
    base = p.get_base_id()
    profiler.clean()
    notifier.clear_notifier_cache()
    return base


print(json.dumps({"ok": trace("api", False), "error": trace("compute", True)}))
