"""Python osprofiler 4.4.0 timings for scripts/bench, printed as
`python/<case>: <ns> ns` lines (medians of timeit repeats).

Cases: start+stop with a trace active and the no-op notifier (what
`profiler.start`/`stop` cost with no driver), with no trace active, and
start+stop with the Redis driver (redis://127.0.0.1:6379/15, emptied
before and after; skipped when Redis does not answer).
"""
import statistics
import sys
import timeit

from osprofiler import notifier, profiler


def median_ns(stmt, number, repeat=5):
    times = timeit.repeat(stmt, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e9


def pair():
    profiler.start("span", None)
    profiler.stop()


def main():
    quick = "--quick" in sys.argv
    n = 20_000 if quick else 100_000

    profiler.clean()
    print(f"python/no_trace_active: {median_ns(pair, n * 5):.1f} ns")

    notifier.set(lambda info, context=None: None)  # the no-op notifier
    profiler.init("SECRET_KEY")
    profiler.start("outer", None)
    print(f"python/start_stop: {median_ns(pair, n):.1f} ns")
    profiler.clean()

    try:
        import redis
        from oslo_config import cfg
        from osprofiler import opts  # registers the [profiler] options
        from osprofiler.drivers import base

        opts.set_defaults(cfg.CONF)
        cfg.CONF([], project="bench")

        url = "redis://127.0.0.1:6379/15"
        client = redis.Redis.from_url(url)
        client.flushdb()
        driver = base.get_driver(url, project="bench", service="api", host="bench",
                                 conf=cfg.CONF)
        notifier.set(driver.notify)
        profiler.init("SECRET_KEY")
        profiler.start("outer", None)
        m = 2_000 if quick else 10_000
        print(f"python/start_stop_redis: {median_ns(pair, m, repeat=3):.1f} ns")
        profiler.clean()
        client.flushdb()
    except Exception as e:  # Redis down or driver missing: no row
        print(f"python/start_stop_redis: skipped ({type(e).__name__}: {e})", file=sys.stderr)


if __name__ == "__main__":
    main()
