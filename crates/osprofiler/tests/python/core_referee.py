"""Referee side of the header and payload interop tests (run with the .venv
Python, osprofiler 4.4.0). JSON lines on stdin, one JSON line out per line in.

  core_referee.py sign
      in:  {"how": "web", "key", "base_id", "parent_id", "starts": n}
             profiler.init(key, base_id, parent_id), n profiler.start()s,
             then web.get_trace_id_headers()
           {"how": "pack", "key", "data": {...}}
             _utils.signed_pack(data, key)
      out: {"info", "hmac", "base_id", "parent_id"}   (the ids the headers
           should carry: get_base_id() and get_id() for "web")

  core_referee.py verify
      in:  {"info": str|null, "hmac": str|null, "keys": "k1, k2"}
      out: {"accept": bool, "error": exception class name or null,
            "nonstr_ids": bool, "base_id", "parent_id", "hmac_key"}
           accept = signed_unpack(...) returns a dict AND
           WsgiMiddleware._trace_is_valid(it); an exception = refused.
           nonstr_ids: accepted with a base_id that is not a str, or a
           parent_id that is neither a str nor null.
           nonunicode_ids: accepted with an id holding a lone surrogate
           (from a "\ud800" escape), which is no valid Unicode text.
           nonstandard_json: accepted, and the JSON text holds what RFC 8259
           JSON does not (NaN, Infinity, numbers beyond a double) or nests
           128 or more containers deep.

  core_referee.py payloads
      in:  {"name": scenario name, "ops": [op, ...]}
      out: {"name": ..., "payloads": [every payload handed to the notifier]}
      ops: {"op": "init", "key", "base_id"?, "parent_id"?} | {"op": "clean"}
           {"op": "start", "name", "info"?} | {"op": "stop", "info"?}
           {"op": "trace", "name", "info"?, "body": [ops]}     (with Trace)
           {"op": "fail", "name", "info"?, "body": [ops], "message"}
               (with Trace, the body then raises BoomError(message))
"""

import base64
import copy
import json
import sys

from osprofiler import _utils as utils
from osprofiler import notifier, profiler, web


class BoomError(Exception):
    pass


def out(value):
    # ensure_ascii keeps lone surrogates representable as escapes.
    sys.stdout.write(json.dumps(value) + "\n")


def text_or_none(value):
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogate: Rust strings cannot hold it
        return None
    return value


def sign(req):
    if req["how"] == "web":
        profiler.clean()
        p = profiler.init(req["key"], req.get("base_id"), req.get("parent_id"))
        for _ in range(req.get("starts", 0)):
            profiler.start("interop")
        headers = web.get_trace_id_headers()
        result = {
            "info": headers.get(web.X_TRACE_INFO),
            "hmac": headers.get(web.X_TRACE_HMAC),
            "base_id": p.get_base_id(),
            "parent_id": p.get_id(),
        }
        profiler.clean()
        return result
    info, hmac = utils.signed_pack(req["data"], req["key"])
    return {"info": info.decode(), "hmac": hmac}


MIDDLEWARE = web.WsgiMiddleware(None)


def depth(value):
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def nonstandard_json(info):
    raw = json.loads(base64.urlsafe_b64decode(info))
    try:
        json.dumps(raw, allow_nan=False)
    except ValueError:
        return True
    return depth(raw) >= 128


def verify(req):
    answer = {"accept": False, "error": None, "nonstr_ids": False, "nonunicode_ids": False,
              "nonstandard_json": False,
              "base_id": None, "parent_id": None, "hmac_key": None}
    try:
        trace = utils.signed_unpack(req["info"], req["hmac"], utils.split(req["keys"]))
        accept = isinstance(trace, dict) and MIDDLEWARE._trace_is_valid(trace)
    except Exception as e:  # Python would fail the request's header check
        answer["error"] = type(e).__name__
        return answer
    if not accept:
        return answer
    answer["accept"] = True
    base, parent = trace.get("base_id"), trace.get("parent_id")
    answer["nonstr_ids"] = not isinstance(base, str) or not (parent is None or isinstance(parent, str))
    answer["base_id"] = text_or_none(base)
    answer["parent_id"] = text_or_none(parent)
    answer["nonunicode_ids"] = any(
        isinstance(v, str) and text_or_none(v) is None for v in (base, parent))
    answer["hmac_key"] = trace["hmac_key"]
    answer["nonstandard_json"] = nonstandard_json(req["info"])
    return answer


def run_ops(ops):
    for op in ops:
        kind = op["op"]
        if kind == "init":
            profiler.init(op["key"], base_id=op.get("base_id"), parent_id=op.get("parent_id"))
        elif kind == "clean":
            profiler.clean()
        elif kind == "start":
            profiler.start(op["name"], info=op.get("info"))
        elif kind == "stop":
            profiler.stop(info=op.get("info"))
        elif kind == "trace":
            with profiler.Trace(op["name"], info=op.get("info")):
                run_ops(op.get("body", []))
        elif kind == "fail":
            try:
                with profiler.Trace(op["name"], info=op.get("info")):
                    run_ops(op.get("body", []))
                    raise BoomError(op["message"])
            except BoomError:
                pass
        else:
            raise ValueError("unknown op %r" % kind)


def payloads(req):
    collected = []
    notifier.set(lambda info, context=None: collected.append(copy.deepcopy(info)))
    profiler.clean()
    run_ops(req["ops"])
    profiler.clean()
    return {"name": req["name"], "payloads": collected}


def main():
    handler = {"sign": sign, "verify": verify, "payloads": payloads}[sys.argv[1]]
    for line in sys.stdin.buffer:
        if line.strip():
            out(handler(json.loads(line)))


if __name__ == "__main__":
    main()
