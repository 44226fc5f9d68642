"""Referee of the OTLP driver tests: decodes OTLP trace exports with the
official protobuf definitions (the `opentelemetry-proto` package) and runs
upstream's own OTLP driver (osprofiler 4.4.0, OpenTelemetry Python SDK).

Modes (argv[1]):

  decode        stdin: one base64 ExportTraceServiceRequest body per line;
                stdout: one JSON line per body (see `normalize`).
  upstream      stdin: one JSON object {"project", "service", "prefix",
                "notifications": [payload, ...]}; runs osprofiler's OTLP
                driver on the payloads with its exporter pointed at a capture
                server on 127.0.0.1, flushes, and prints the decoded
                exports as one JSON line {"requests": [...]}.
  grpc-server [PORT]
                a gRPC TraceService on 127.0.0.1:PORT (default 0: any; grpcio, the official
                service definition). Prints "PORT <n>", then reads commands:
                "fail <count> <code>" (answer the next <count> calls with
                that status code), "dump" (print {"requests": [...]} of all
                calls answered OK, and the count of failed ones). EOF stops.

Ids are shown as lowercase hex (the JSON mapping of protobuf shows bytes
as base64).
"""

import base64
import http.server
import json
import sys
import threading

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def hexify(span_like):
    for key in ("traceId", "spanId", "parentSpanId"):
        if key in span_like:
            span_like[key] = base64.b64decode(span_like[key]).hex()
    return span_like


def normalize(body):
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    out = json_format.MessageToDict(request)
    for resource_spans in out.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                hexify(span)
                for link in span.get("links", []):
                    hexify(link)
    return out


def decode():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        print(json.dumps(normalize(base64.b64decode(line))), flush=True)


class Capture(http.server.BaseHTTPRequestHandler):
    bodies = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        Capture.bodies.append(
            {
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "body": body,
            }
        )
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def upstream():
    from oslo_config import cfg
    from osprofiler import opts
    from osprofiler.drivers import base

    job = json.loads(sys.stdin.read())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    conf = cfg.ConfigOpts()
    for group, options in opts.list_opts():
        conf.register_opts(options, group=group)
    conf([])
    if job.get("prefix") is not None:
        conf.set_override("service_name_prefix", job["prefix"], "profiler_otlp")
    driver = base.get_driver(
        f"otlp://127.0.0.1:{port}",
        project=job.get("project"),
        service=job.get("service"),
        host="referee",
        conf=conf,
    )
    for payload in job["notifications"]:
        driver.notify(payload)
    if not driver.trace_api.get_tracer_provider().force_flush(10_000):
        sys.exit("upstream's exporter did not flush in 10 s")
    server.shutdown()
    requests = []
    for captured in Capture.bodies:
        requests.append(
            {
                "path": captured["path"],
                "content_type": captured["content_type"],
                "export": normalize(captured["body"]),
            }
        )
    print(json.dumps({"requests": requests}), flush=True)


def grpc_server():
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    lock = threading.Lock()
    state = {"fail": [], "requests": [], "failed": 0}

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            with lock:
                if state["fail"]:
                    code = state["fail"].pop(0)
                    state["failed"] += 1
                    context.abort(grpc.StatusCode(code_of(code)), "referee says no")
                metadata = dict(context.invocation_metadata())
                state["requests"].append(
                    {
                        "user_agent": metadata.get("user-agent"),
                        "export": normalize(request.SerializeToString()),
                    }
                )
            return trace_service_pb2.ExportTraceServiceResponse()

    def code_of(number):
        for status in grpc.StatusCode:
            if status.value[0] == number:
                return status.value
        raise ValueError(number)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    wanted = sys.argv[2] if len(sys.argv) > 2 else "0"
    port = server.add_insecure_port(f"127.0.0.1:{wanted}")
    server.start()
    print(f"PORT {port}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "fail":
            with lock:
                state["fail"].extend([int(words[2])] * int(words[1]))
            print("OK", flush=True)
        elif words[0] == "dump":
            with lock:
                print(
                    json.dumps({"requests": state["requests"], "failed": state["failed"]}),
                    flush=True,
                )
    server.stop(0)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "decode":
        decode()
    elif mode == "upstream":
        upstream()
    elif mode == "grpc-server":
        grpc_server()
    else:
        sys.exit(f"unknown mode {mode!r}: use decode, upstream or grpc-server")
