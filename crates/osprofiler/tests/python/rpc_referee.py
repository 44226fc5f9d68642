"""RPC trace_info as OpenStack services handle it, for the rpc interop test.

Reads one JSON message context per stdin line. For each, does what nova's
ProfilerRequestContextSerializer.deserialize_context does
(`profiler.init(**context.pop("trace_info"))`), runs an `rpc` element in it
and, inside that element, serializes a context for the next hop the way
serialize_context does. Prints one JSON line per input:
{"payloads": [...], "next_context": {...}}.
"""

import json
import sys

from osprofiler import notifier, profiler

for line in sys.stdin:
    context = json.loads(line)
    payloads = []
    notifier.set(payloads.append)
    trace_info = context.pop("trace_info", None)
    if trace_info:
        profiler.init(**trace_info)
    next_context = dict(context)
    with profiler.Trace("rpc", info={"rpc": {"method": "reboot"}}):
        prof = profiler.get()
        if prof:
            next_context["trace_info"] = {
                "hmac_key": prof.hmac_key,
                "base_id": prof.get_base_id(),
                "parent_id": prof.get_id(),
            }
    profiler.clean()
    print(json.dumps({"payloads": payloads, "next_context": next_context}), flush=True)
