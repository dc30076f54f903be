"""The Python side of taskq's interop tests: a Celery app whose tasks a taskq producer sends
to a real `celery worker`, and a driver that sends tasks from Python to taskq workers.

The broker and result URLs come from BROKER_URL and RESULT_BACKEND (both redis:// URLs of a
redis-server the Rust test started); BROKER_TRANSPORT_OPTIONS, when set, is a JSON object of
kombu transport options (e.g. custom priority_steps).
"""
import datetime
import decimal
import json
import os
import time
import uuid

from celery import Celery

app = Celery(
    "interop",
    broker=os.environ["BROKER_URL"],
    backend=os.environ.get("RESULT_BACKEND", os.environ["BROKER_URL"]),
)
app.conf.update(
    broker_transport_options=json.loads(os.environ.get("BROKER_TRANSPORT_OPTIONS") or "{}"),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=1,
)
if os.environ.get("RESULT_EXTENDED"):
    # Celery's result_extended: result metas also carry name, args, kwargs, worker, retries, queue.
    app.conf.result_extended = True
if os.environ.get("VISIBILITY_TIMEOUT"):
    # What Celery apps with long ETAs do: raise kombu's visibility timeout above them.
    app.conf.broker_transport_options = {"visibility_timeout": int(os.environ["VISIBILITY_TIMEOUT"])}


@app.task(name="py.add")
def add(x, y):
    return x + y


@app.task(name="py.echo")
def echo(*args, **kwargs):
    """Returns what it was given, to compare JSON shapes after the round trip."""
    return {"args": list(args), "kwargs": kwargs}


@app.task(name="py.boom")
def boom(message):
    raise ValueError(message, 42)


@app.task(name="py.typed_values")
def typed_values():
    """Returns values kombu encodes as tagged objects."""
    return {
        "datetime": datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc),
        "date": datetime.date(2024, 1, 2),
        "time": datetime.time(3, 4, 5),
        "decimal": decimal.Decimal("1.5"),
        "uuid": uuid.UUID("12345678123456781234567812345678"),
        "bytes": b"abc",
    }


@app.task(name="py.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@app.task(name="py.flaky", bind=True, max_retries=3)
def flaky(self, succeed_after):
    """Retries itself until it has been retried `succeed_after` times; returns the retries count."""
    if self.request.retries < succeed_after:
        raise self.retry(countdown=0.2)
    return self.request.retries


@app.task(name="py.sleep_logged", acks_late=True)
def sleep_logged(seconds, ledger):
    """Appends a line to `ledger` each time it starts, then sleeps: counts runs of a long task
    whose message stays in `unacked` while it runs (acks_late)."""
    with open(ledger, "a") as f:
        f.write("start\n")
    time.sleep(seconds)
    return seconds


@app.task(name="py.tsum")
def tsum(numbers):
    """A chord body: the sum of the header's results."""
    return sum(numbers)


@app.task(name="py.failed_id")
def failed_id(task_id):
    """An old-style errback: returns the id of the task that failed."""
    return task_id


@app.task(name="py.progress", bind=True)
def progress(self, gate_dir, total):
    """Reports PROGRESS {"current": step, "total": total} for each step, then waits for the file
    `<gate_dir>/<step>` before going on: the test reads each report while the task waits."""
    for step in range(total):
        self.update_state(state="PROGRESS", meta={"current": step, "total": total})
        gate = os.path.join(gate_dir, str(step))
        deadline = time.monotonic() + 30
        while not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise TimeoutError(gate)
            time.sleep(0.02)
    return total


if os.environ.get("OTEL_INSTRUMENT"):
    # The trace tests: OpenTelemetry's Celery instrumentation in each pool process, after the
    # fork as its documentation asks, with a real provider so that spans get ids.
    from celery.signals import worker_process_init

    @worker_process_init.connect(weak=False)
    def instrument(*args, **kwargs):
        from opentelemetry import trace
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
        CeleryInstrumentor().instrument()


@app.task(name="py.trace_ids")
def trace_ids():
    """The running task's trace id and its span's parent span id, in hex, as the OpenTelemetry
    instrumentation (OTEL_INSTRUMENT) set them; needs the CELERY_OTEL environment."""
    from opentelemetry import trace

    span = trace.get_current_span()
    parent = getattr(span, "parent", None)
    return {
        "trace_id": format(span.get_span_context().trace_id, "032x"),
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
    }
