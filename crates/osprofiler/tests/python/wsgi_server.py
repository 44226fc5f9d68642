"""A WSGI app behind upstream's osprofiler.web.WsgiMiddleware, for the
HTTP client interop test.

usage: wsgi_server.py PAYLOADS_FILE REQUESTS HMAC_KEYS

Listens on a free port of 127.0.0.1, prints the port on stdout, serves
exactly REQUESTS requests and exits. Every osprofiler payload is appended
to PAYLOADS_FILE as one JSON line. The app itself records a `db` element
inside the middleware's `wsgi` element.
"""

import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from osprofiler import notifier, profiler, web

payloads_file, requests_count, hmac_keys = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = open(payloads_file, "a", encoding="utf-8")


def notify(payload):
    out.write(json.dumps(payload) + "\n")
    out.flush()


notifier.set(notify)


def app(environ, start_response):
    with profiler.Trace("db", info={"db": {"statement": "SELECT 1", "params": {}}}):
        pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server(
    "127.0.0.1", 0, web.WsgiMiddleware(app, hmac_keys=hmac_keys, enabled=True),
    handler_class=QuietHandler,
)
server.timeout = 30  # handle_request gives up after this; the test fails then
print(server.server_port, flush=True)
for _ in range(requests_count):
    server.handle_request()
out.close()
