"""Sends tasks with real Celery and reads their results with Celery's AsyncResult.

Reads a JSON list of calls on stdin, each {"task", "args", "kwargs", "options", "timeout"};
sends them all, then waits for each and prints one JSON line per call:
{"id": ..., "state": ..., "result": ...} or {"id": ..., "state": ..., "error": {"type", "module",
"message", "traceback"}}. Values Python cannot put in JSON (datetime, Decimal, ...) are
printed as {"py_type": name, "repr": str(value)}.
"""
import datetime
import decimal
import json
import sys
import uuid

from celery_app import app


def plain(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time, decimal.Decimal, uuid.UUID, bytes)):
        return {"py_type": type(value).__name__, "repr": str(value)}
    raise TypeError(f"cannot print {type(value)}")


def main():
    calls = json.load(sys.stdin)
    sent = []
    for call in calls:
        options = dict(call.get("options") or {})
        for key in ("eta", "expires"):
            if isinstance(options.get(key), str):
                options[key] = datetime.datetime.fromisoformat(options[key])
        result = app.send_task(call["task"], args=call.get("args") or [], kwargs=call.get("kwargs") or {}, **options)
        sent.append((call, result))
    for call, result in sent:
        line = {"id": result.id}
        try:
            line["result"] = result.get(timeout=call.get("timeout", 20))
        except Exception as exc:  # the task's failure, re-raised by Celery
            line["error"] = {
                "type": type(exc).__name__,
                "module": type(exc).__module__,
                "message": str(exc),
                "args": [str(a) for a in getattr(exc, "args", [])],
                "traceback": result.traceback,
            }
        line["state"] = result.state
        print(json.dumps(line, default=plain), flush=True)


if __name__ == "__main__":
    main()
