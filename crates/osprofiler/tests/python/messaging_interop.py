"""Python side of the messaging:// interop tests (run with the .venv Python:
osprofiler 4.4.0, oslo.messaging, kombu).

  messaging_interop.py publish TRANSPORT_URL [COUNT]
      Publishes COUNT (default 1) traces with the real osprofiler
      `messaging://` driver (oslo.messaging notifier, RabbitMQ) and prints
      one JSON line per trace: {"base_id", "payloads", "report"}, where
      "payloads" are the dicts handed to the notifier (as JSON, datetimes as
      isoformat) and "report" is what `osprofiler trace show --json` prints
      for them: Driver._append_results + _parse_results over the same
      payloads, serialized with the CLI's datetime handling.

  messaging_interop.py purge TRANSPORT_URL
      Empties the queue profiler.info (kombu), if it exists.
"""

import copy
import datetime
import json
import sys
import time

from oslo_config import cfg
from osprofiler import notifier, profiler
from osprofiler.drivers import base


class Referee(base.Driver):
    """The loop of Messaging.get_report, over given payloads."""

    def report(self, events):
        for n in events:
            self._append_results(
                n["trace_id"], n["parent_id"], n["name"], n["project"],
                n["service"], n["info"]["host"], n["timestamp"], n)
        return self._parse_results()


def cli_json(value):
    # The CLI's `default=datetime_json_serialize`.
    return json.loads(json.dumps(
        value, default=lambda o: o.isoformat() if hasattr(o, "isoformat") else o))


def publish_one(send):
    captured = []

    def notify(info, **kwargs):
        send(info, **kwargs)
        captured.append(copy.deepcopy(info))

    notifier.set(notify)
    p = profiler.init("SECRET_KEY")
    profiler.start("wsgi", info={"request": {"path": "/servers", "method": "POST"}})
    profiler.start("db", info={
        "db": {"statement": "SELECT 1", "params": []},
        # kombu sends these as {"__type__", "__value__"} tags.
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5, 6),
        "day": datetime.date(2024, 1, 2),
        "text": "caf\u00e9 \u2603",
    })
    time.sleep(0.003)
    profiler.stop(info={"result": 1})
    profiler.start("compute", info={"function": {"name": "build"}})
    time.sleep(0.002)
    profiler.stop(info={"etype": "ValueError", "message": "disk full"})
    profiler.stop()
    base_id = p.get_base_id()
    profiler.clean()
    return {
        "base_id": base_id,
        "payloads": cli_json(captured),
        "report": cli_json(Referee("referee://").report(captured)),
    }


def publish(url, count):
    conf = cfg.ConfigOpts()
    conf([], project="osprofiler-messaging-test")
    # notifier.create returns the bound `Messaging.notify` of the driver.
    send = notifier.create(
        "messaging://", project="pyproj", service="pysvc", host="pyhost",
        context={}, conf=conf, transport_url=url)
    for _ in range(count):
        print(json.dumps(publish_one(send)), flush=True)
    send.__self__.transport.cleanup()


def purge(url):
    import kombu
    with kombu.Connection(url.replace("rabbit://", "amqp://", 1)) as conn:
        channel = conn.channel()
        try:
            channel.queue_purge("profiler.info")
        except Exception:  # noqa: BLE001 - no queue, nothing to purge
            pass


def main():
    command, url = sys.argv[1], sys.argv[2]
    if command == "publish":
        publish(url, int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    elif command == "purge":
        purge(url)
    else:
        sys.exit("unknown command %r" % command)


if __name__ == "__main__":
    main()
