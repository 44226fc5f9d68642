"""A Python service calling `osprofiler demo --serve` with the real
osprofiler 4.4.0, as an OpenStack client/service would.

Usage: demo_client.py API_URL REDIS_URL KEY WRONG_KEY
Prints {"traced": <base id>, "forged": <base id of the wrong-key request>}.
"""
import json
import sys

import requests
from oslo_config import cfg
from osprofiler import notifier, opts, profiler, web

api, redis_url, key, wrong_key = sys.argv[1:5]
conf = cfg.ConfigOpts()
opts.set_defaults(conf)
conf([], project="demo-client")
notifier.set(notifier.create(redis_url, project="python", service="client", host="py-host", conf=conf))


def call(hmac_key, name):
    p = profiler.init(hmac_key)
    with profiler.Trace("client", info={"function": {"name": "demo_client.call"}}):
        reply = requests.post(api + "/servers", json={"name": name}, headers=web.get_trace_id_headers(), timeout=10)
        reply.raise_for_status()
    base = p.get_base_id()
    profiler.clean()
    return base


traced = call(key, "from-python")
# Signed with a key the demo does not trust: served, never traced. The
# Python side records nothing either (a no-op notifier), so anything in
# Redis under this id would have come from the demo.
notifier.set(lambda info, context=None: None)
forged = call(wrong_key, "forged")
print(json.dumps({"traced": traced, "forged": forged}))
