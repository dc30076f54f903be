"""Runs taskq's fetch script (and, with --store, its result script) over staged messages on a
Redis at --port, the way a worker runs them: batches of 256. script_cost.sh starts that Redis
under callgrind, which counts the instructions spent inside EVALSHA.

The scripts are read from taskq/src/scripts.rs, so the count is of the code as it is.
"""

import argparse
import re
import uuid

import redis

# An envelope as taskq's producer writes it for the benchmark's no-op task (kombu's layout,
# `properties` last); the ids are replaced per message.
ENVELOPE = (
    '{"body": "W1tdLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=", '
    '"content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", '
    '"task": "bench.noop", "id": "TASK_ID", "shadow": null, "eta": null, "expires": null, '
    '"group": null, "group_index": null, "retries": 0, "timelimit": [null, null], '
    '"root_id": "TASK_ID", "parent_id": null, "argsrepr": "(0,)", "kwargsrepr": "{}", '
    '"origin": "gen1000@bench", "ignore_result": false, "replaced_task_nesting": 0, '
    '"stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "TASK_ID", '
    '"reply_to": "4e87e6e8-d8fd-4f7f-9bb0-0198efbb271d", "delivery_mode": 2, '
    '"delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, '
    '"body_encoding": "base64", "delivery_tag": "DELIVERY_TAG"}}'
)

RECORD = (
    '{"status": "SUCCESS", "result": 0, "traceback": null, "children": [], '
    '"date_done": "2026-11-21T10:00:00.000000+00:00", "task_id": "%s"}'
)

BATCH = 256


def script(source: str, name: str) -> str:
    found = re.search(r'pub\(crate\) const ' + name + r': &str = r#"(.*?)"#;', source, re.S)
    if not found:
        raise SystemExit(f"no {name} script in the source")
    return found.group(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--scripts", required=True, help="path of taskq/src/scripts.rs")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--store", action="store_true", help="also store a result per message")
    args = parser.parse_args()
    source = open(args.scripts, encoding="utf-8").read()

    broker = redis.Redis(port=args.port, db=0)
    results = redis.Redis(port=args.port, db=1)
    broker.flushall()
    pipe = broker.pipeline(transaction=False)
    for i in range(args.messages):
        envelope = ENVELOPE.replace("TASK_ID", str(uuid.uuid4()))
        pipe.lpush("celery", envelope.replace("DELIVERY_TAG", str(uuid.uuid4())))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()

    fetch = broker.register_script(script(source, "FETCH"))
    task_ids = []
    while True:
        out = fetch(
            keys=["unacked", "unacked_index", "taskq.dead_letter", "taskq.leases", "celery"],
            args=[BATCH, 1 << 20, "celery"],
        )
        if len(out) <= 1:
            break
        for raw in out[3::3]:
            task_ids.append(re.search(rb'"id": "([^"]+)"', raw).group(1).decode())
    if len(task_ids) != args.messages:
        raise SystemExit(f"fetched {len(task_ids)} of {args.messages} messages")

    if args.store:
        store = results.register_script(script(source, "STORE_RESULTS"))
        for start in range(0, len(task_ids), BATCH):
            ids = task_ids[start : start + BATCH]
            store(
                keys=[f"celery-task-meta-{i}" for i in ids],
                args=[86400] + [RECORD % i for i in ids],
            )


if __name__ == "__main__":
    main()
