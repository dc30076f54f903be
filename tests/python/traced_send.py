"""Sends one task with Celery instrumented by OpenTelemetry (opentelemetry-instrumentation-celery),
inside a span of its own, and waits for its result.

Reads {"task", "args", "queue"} on stdin; prints one JSON line {"id", "trace_id", "result"},
the trace id as 32 hex digits: the trace the task's run should continue.
"""
import json
import sys

from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from celery_app import app


def main():
    call = json.load(sys.stdin)
    # A real provider, so that spans get ids; nothing is exported.
    trace.set_tracer_provider(TracerProvider())
    CeleryInstrumentor().instrument()
    tracer = trace.get_tracer("taskq-tests")
    with tracer.start_as_current_span("python-request") as span:
        result = app.send_task(call["task"], args=call["args"], queue=call["queue"])
        trace_id = format(span.get_span_context().trace_id, "032x")
    line = {"id": result.id, "trace_id": trace_id, "result": result.get(timeout=20)}
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
