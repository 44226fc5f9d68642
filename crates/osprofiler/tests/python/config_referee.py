"""Referee side of the config interop test (run with the .venv Python,
osprofiler 4.4.0 and oslo.config).

  config_referee.py
      in:  {"text": INI file contents}   (JSON lines)
      out: {"values": {option: value, ...}} as oslo.config reads the file
           with osprofiler's options registered, or {"error": class name}
           when oslo.config refuses the file or a value.
"""

import json
import os
import sys
import tempfile

from oslo_config import cfg
from osprofiler import opts

PROFILER = [
    "enabled", "trace_sqlalchemy", "trace_requests", "hmac_keys",
    "connection_string", "es_doc_type", "es_scroll_time", "es_scroll_size",
    "socket_timeout", "sentinel_service_name", "filter_error_trace",
]


def read(text):
    conf = cfg.ConfigOpts()
    conf.register_opts(opts._PROFILER_OPTS, group=opts._profiler_opt_group)
    conf.register_opts(opts._OTLP_OPTS, group=opts._otlp_profiler_opt_group)
    conf.register_opt(cfg.StrOpt("transport_url"))
    fd, path = tempfile.mkstemp(suffix=".conf")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        try:
            conf(args=[], project="referee", default_config_files=[path])
            values = {name: getattr(conf.profiler, name) for name in PROFILER}
            values["service_name_prefix"] = conf.profiler_otlp.service_name_prefix
            values["transport_url"] = conf.transport_url
        except Exception as e:  # oslo.config refuses the file or a value
            return {"error": type(e).__name__}
        return {"values": values}
    finally:
        os.unlink(path)


def main():
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(json.dumps(read(json.loads(line)["text"])) + "\n")


if __name__ == "__main__":
    main()
