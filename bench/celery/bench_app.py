"""The Celery side of taskq's benchmark: the same two tasks as the Rust side, under the same
names, on the Redis that ``BROKER_URL`` and ``RESULT_BACKEND`` name (set by bench_celery.py).

Celery's defaults are kept (JSON, prefetch multiplier 4, results kept one day, tasks
acknowledged when received), except that worker start-up retries quietly.
"""

import os
import time

from celery import Celery, signals

app = Celery("bench", broker=os.environ["BROKER_URL"], backend=os.environ["RESULT_BACKEND"])
app.conf.broker_connection_retry_on_startup = True


@app.task(name="bench.noop")
def noop(i):
    """Returns its argument: the no-op of the throughput scenarios."""
    return i


@app.task(name="bench.stamp")
def stamp():
    """Returns when it started, in microseconds since the Unix epoch."""
    return time.time_ns() // 1000


@signals.worker_ready.connect
def _announce_ready(**_):
    # The worker logs at WARNING during the benchmark, so its "ready." line is not printed:
    # tell bench_celery.py through a file instead.
    path = os.environ.get("BENCH_READY_FILE")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write("ready\n")
