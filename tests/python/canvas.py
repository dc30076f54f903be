"""Builds Celery canvases (chain, group, chord, link, link_error, chunks, map, starmap) whose
steps run on Python or on taskq, sends them with real Celery and prints what Celery's
AsyncResult reads back, one JSON line per scenario.

Reads a JSON list on stdin, each {"scenario": name, "langs": ["py"|"rs", ...]}: step i of the
scenario runs on Python (`py.<task>`, queue `celery`) or on taskq (`rs.<task>`, queue `rs`)
as langs[i % len(langs)] says. Prints {"scenario", "result"} or {"scenario", "error": {"type",
"message"}, "state"}.
"""
import json
import sys
import time
import uuid

from celery import chain, chord, group, states
from celery.canvas import chunks, xmap, xstarmap

from celery_app import app

TIMEOUT = 60


class Steps:
    def __init__(self, langs):
        self.langs = langs
        self.count = 0

    def next_lang(self):
        lang = self.langs[self.count % len(self.langs)]
        self.count += 1
        return lang

    def s(self, name, *args, immutable=False, lang=None, **options):
        lang = lang or self.next_lang()
        queue = "celery" if lang == "py" else "rs"
        return app.signature(f"{lang}.{name}", args=args, immutable=immutable, queue=queue, **options)


def chain2(st):
    return chain(st.s("add", 2, 2), st.s("add", 4)).apply_async().get(timeout=TIMEOUT)


def chain5(st):
    steps = [st.s("add", 1, 1)] + [st.s("add", 1) for _ in range(4)]
    result = chain(*steps).apply_async()
    value = result.get(timeout=TIMEOUT)
    # Every step's result is stored, and each knows its parent.
    parents = []
    node = result
    while node is not None:
        parents.append(node.get(timeout=TIMEOUT))
        node = node.parent
    return {"value": value, "steps": parents}


def immutable(st):
    return chain(st.s("add", 1, 1), st.s("add", 10, 10, immutable=True)).apply_async().get(timeout=TIMEOUT)


def link(st):
    callback_id = str(uuid.uuid4())
    first = st.s("add", 2, 2)
    result = first.apply_async(link=st.s("add", 10, task_id=callback_id))
    value = result.get(timeout=TIMEOUT)
    callback = app.AsyncResult(callback_id).get(timeout=TIMEOUT)
    children = [child.id for child in (result.children or [])]
    return {"value": value, "callback": callback, "callback_is_child": callback_id in children}


def link_error(st):
    errback_id = str(uuid.uuid4())
    failing = st.s("boom", "link_error")
    result = failing.apply_async(link_error=st.s("failed_id", task_id=errback_id))
    try:
        result.get(timeout=TIMEOUT)
        raise AssertionError("boom did not fail")
    except AssertionError:
        raise
    except Exception:  # ValueError from Python, the Rust error's own type from taskq
        pass
    return {"errback_got_failed_id": app.AsyncResult(errback_id).get(timeout=TIMEOUT) == result.id}


def group100(st):
    return group(st.s("add", i, i) for i in range(100)).apply_async().get(timeout=TIMEOUT)


def chord_split(st):
    header = [st.s("add", i, i) for i in range(10)]
    return chord(header, st.s("tsum")).apply_async().get(timeout=TIMEOUT)


def chord_failing_part(st):
    header = [st.s("add", 1, 1), st.s("boom", "in a chord"), st.s("add", 2, 2)]
    result = chord(header, st.s("tsum")).apply_async()
    try:
        result.get(timeout=TIMEOUT, propagate=True)
        raise AssertionError("the chord did not fail")
    except AssertionError:
        raise
    except Exception:  # the failed part, re-raised as soon as it is known
        pass
    # The body is failed once every part has returned.
    body = app.AsyncResult(result.id)
    deadline = time.monotonic() + TIMEOUT
    while body.state not in states.READY_STATES and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"state": body.state, "stored_type": type(body.result).__name__}


def chain_into_chord(st):
    # A group followed by a step in a chain: Celery makes it a chord.
    steps = chain(st.s("add", 1, 1), group(st.s("add", 1), st.s("add", 2)), st.s("tsum"))
    return steps.apply_async().get(timeout=TIMEOUT)


def group_of_chains(st):
    members = group(chain(st.s("add", 1, 1), st.s("add", 1)), st.s("add", 2, 2))
    return members.apply_async().get(timeout=TIMEOUT)


def chunked(st):
    sig = st.s("add")
    return chunks(sig, list(zip(range(5), range(5))), 2).apply_async(queue=sig.options["queue"]).get(timeout=TIMEOUT)


def mapped(st):
    sig = st.s("tsum")
    return xmap(sig, [[1, 2], [3]]).apply_async(queue=sig.options["queue"]).get(timeout=TIMEOUT)


def starmapped(st):
    sig = st.s("add")
    return xstarmap(sig, [[1, 2], [3, 4]]).apply_async(queue=sig.options["queue"]).get(timeout=TIMEOUT)


SCENARIOS = {f.__name__: f for f in [chain2, chain5, immutable, link, link_error, group100,
                                      chord_split, chord_failing_part, chain_into_chord, group_of_chains, chunked, mapped, starmapped]}


def main():
    for job in json.load(sys.stdin):
        line = {"scenario": job["scenario"], "langs": job["langs"]}
        try:
            line["result"] = SCENARIOS[job["scenario"]](Steps(job["langs"]))
        except Exception as exc:
            line["error"] = {"type": type(exc).__name__, "message": str(exc)}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
