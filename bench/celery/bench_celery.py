"""Runs Python Celery through taskq's benchmark scenarios and prints one JSON object.

    python bench_celery.py --redis redis://127.0.0.1:PORT sequential --tasks 10000
    python bench_celery.py --redis redis://127.0.0.1:PORT drain --tasks 10000 --concurrency 2
    python bench_celery.py --redis redis://127.0.0.1:PORT latency --rate 1000 --secs 10

Databases as on the Rust side: 0 broker, 1 results, 2 staging. Every scenario starts with
FLUSHALL. taskq-bench runs this with --with-celery, from the virtual environment it creates.
"""

import argparse
import json
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUEUE = "celery"


def main():
    args = parse_args()
    base = args.redis.rstrip("/")
    # bench_app reads these when imported, so they are set first.
    os.environ["BROKER_URL"] = f"{base}/0"
    os.environ["RESULT_BACKEND"] = f"{base}/1"
    import celery
    import kombu
    import redis

    dbs = {db: redis.Redis.from_url(f"{base}/{db}") for db in (0, 1, 2)}
    dbs[0].flushall()
    result = SCENARIOS[args.scenario](args, base, dbs)
    result.update(
        scenario=args.scenario,
        celery=celery.__version__,
        kombu=kombu.__version__,
        redis_py=redis.__version__,
        python=platform.python_version(),
    )
    print(json.dumps(result))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True, help="redis://host:port, without a db")
    sub = parser.add_subparsers(dest="scenario", required=True)
    seq = sub.add_parser("sequential")
    seq.add_argument("--tasks", type=int, default=10_000)
    drain = sub.add_parser("drain")
    drain.add_argument("--tasks", type=int, default=10_000)
    drain.add_argument("--concurrency", type=int, default=os.cpu_count())
    lat = sub.add_parser("latency")
    lat.add_argument("--rate", type=float, default=1000.0)
    lat.add_argument("--secs", type=float, default=10.0)
    lat.add_argument("--concurrency", type=int, default=os.cpu_count())
    lat.add_argument("--collectors", type=int, default=64)
    return parser.parse_args()


def sequential(args, base, dbs):
    """``noop.delay(i)`` one after the other, as the Rust side does."""
    from bench_app import noop

    noop.delay(-1)  # opens the connection and warms Celery's lazy set-up, as taskq's ping does
    dbs[0].flushall()
    started = time.perf_counter()
    for i in range(args.tasks):
        noop.delay(i)
    secs = time.perf_counter() - started
    queued = dbs[0].llen(QUEUE)
    if queued != args.tasks:
        sys.exit(f"{queued} messages queued instead of {args.tasks}")
    return throughput(args.tasks, secs)


def drain(args, base, dbs):
    """A prefork worker drains a full queue, storing results; timed as on the Rust side: the
    queue is filled in db 2 and moved into db 0 at once, with the worker already waiting."""
    from celery import Celery

    stage = Celery("stage", broker=f"{base}/2", backend=f"{base}/1")
    for i in range(args.tasks):
        stage.send_task("bench.noop", args=(i,), queue=QUEUE)
    if dbs[2].llen(QUEUE) != args.tasks:
        sys.exit("the staged queue is incomplete")
    with Worker(args.concurrency):
        time.sleep(0.3)
        started = time.perf_counter()
        dbs[2].move(QUEUE, 0)
        wait_for(lambda: dbs[1].dbsize() >= args.tasks, timeout=60 + args.tasks / 100)
        secs = time.perf_counter() - started
    out = throughput(args.tasks, secs)
    out.update(pool="prefork", concurrency=args.concurrency)
    return out


def latency(args, base, dbs):
    """Calls arrive at a steady rate; each ``stamp.delay()`` → ``AsyncResult.get()`` round trip
    is timed. The results are waited for in a second process, by a pool of threads (Celery
    keeps one result backend per thread), so that waiting neither holds up the sender (Python
    runs one thread at a time) nor lets one slow result delay the timing of others. Times are
    wall-clock, shared by both processes."""
    from bench_app import stamp

    spawn = multiprocessing.get_context("spawn")
    pending, done = spawn.Queue(), spawn.Queue()
    with Worker(args.concurrency):
        stamp.delay().get(timeout=30)  # warm up the producer
        waiter = spawn.Process(target=wait_results, args=(pending, done, args.collectors))
        waiter.start()
        if done.get(timeout=60) != "ready":
            sys.exit("the result waiter did not start")
        calls = int(args.rate * args.secs)
        began = time.perf_counter()
        for i in range(calls):
            delay = began + i / args.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent_wall = time.time()
            sent = time.perf_counter()
            result = stamp.delay()
            pending.put((result.id, sent_wall, time.perf_counter() - sent))
        sending_secs = time.perf_counter() - began
        pending.put(None)
        samples, errors = done.get(timeout=120)
        waiter.join()
    return {
        "target_rate": args.rate,
        "rate_per_sec": calls / sending_secs,
        "secs": sending_secs,
        "samples": len(samples),
        "errors": errors,
        "send": percentiles([s[0] for s in samples]),
        "start": percentiles([s[1] for s in samples]),
        "round_trip": percentiles([s[2] for s in samples]),
        "pool": "prefork",
        "concurrency": args.concurrency,
    }


def wait_results(pending, done, threads):
    """The result waiter of the latency scenario (in its own process): waits for each task id
    from ``pending`` with ``AsyncResult.get()`` and sends back every sample and the error count."""
    from bench_app import app
    from celery.result import AsyncResult

    samples, errors = [], [0]
    lock = threading.Lock()

    def collect():
        while (item := pending.get()) is not None:
            task_id, sent_wall, send_secs = item
            try:
                started_us = AsyncResult(task_id, app=app).get(timeout=30)
                sample = (send_secs, started_us / 1e6 - sent_wall, time.time() - sent_wall)
                with lock:
                    samples.append(sample)
            except Exception:  # noqa: BLE001 - any failure counts as an error sample
                with lock:
                    errors[0] += 1
        pending.put(None)  # let the next thread see the end too

    pool = [threading.Thread(target=collect) for _ in range(threads)]
    for t in pool:
        t.start()
    done.put("ready")
    for t in pool:
        t.join()
    done.put((samples, errors[0]))


class Worker:
    """``celery worker`` (prefork pool) as a child process, ready on entry, stopped on exit."""

    def __init__(self, concurrency):
        self.concurrency = concurrency

    def __enter__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="taskq-bench-celery-")
        ready = Path(self.dir.name) / "ready"
        self.log = open(Path(self.dir.name) / "worker.log", "wb")
        env = dict(os.environ, BENCH_READY_FILE=str(ready), PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench_app", "worker",
             "-P", "prefork", "-c", str(self.concurrency), "-l", "WARNING", "-Q", QUEUE,
             "--without-mingle", "--without-gossip", "--without-heartbeat",
             "-n", f"bench{os.getpid()}@%h"],
            cwd=HERE, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: ready.exists() or self.proc.poll() is not None, timeout=60)
        except TimeoutError:
            self.__exit__(None, None, None)
            raise
        if self.proc.poll() is not None:
            sys.exit(f"celery worker exited: {Path(self.dir.name, 'worker.log').read_text()}")
        return self

    def __exit__(self, *_):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.dir.cleanup()


def wait_for(condition, timeout, every=0.002):
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(every)


def throughput(tasks, secs):
    return {"tasks": tasks, "secs": secs, "per_sec": tasks / secs}


def percentiles(values):
    """Milliseconds at p50, p99, p99.9 and the maximum, from seconds."""
    if not values:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "p999_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(values)

    def at(q):
        return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))] * 1000

    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": ordered[-1] * 1000}


SCENARIOS = {"sequential": sequential, "drain": drain, "latency": latency}

if __name__ == "__main__":
    main()
