"""A confluent-kafka (librdkafka) transaction left open across a proxy restart.

Begins a transaction, produces the values of --first (one per line) and flushes them, then
creates --ready and waits for a line on stdin: the test restarts the proxy meanwhile. It then
commits; the new proxy process refuses that commit, and librdkafka must treat the refusal as
abortable. The script aborts, produces the values of --second in a new transaction and commits.

Prints one JSON object:
  {"commit": {"ok": bool, "code": name, "requires_abort": bool, "retriable": bool, "fatal": bool},
   "abort": "ok" or the error, "second_commit": "ok" or the error}
Every wait is bounded; failures outside those three steps exit non-zero with the reason on stderr.
"""
import argparse
import json
import sys

from confluent_kafka import KafkaException, Producer


def lines(path):
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def produce_all(p, topic, values):
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    for v in values:
        p.produce(topic, value=v, on_delivery=on_delivery)
        p.poll(0)
    left = p.flush(30)
    if left or errors:
        sys.exit("produce: %d undelivered, errors: %s" % (left, errors[:5]))


def attempt(fn):
    try:
        fn()
        return "ok"
    except KafkaException as e:
        return str(e.args[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--txn-id", required=True)
    ap.add_argument("--first", required=True)
    ap.add_argument("--second", required=True)
    ap.add_argument("--ready", required=True)
    a = ap.parse_args()

    p = Producer({
        "bootstrap.servers": a.bootstrap,
        "transactional.id": a.txn_id,
        "client.id": "okp-e2e-confluent-txn",
        "transaction.timeout.ms": 120000,
    })
    p.init_transactions(30)
    p.begin_transaction()
    produce_all(p, a.topic, lines(a.first))
    open(a.ready, "w").close()
    if not sys.stdin.readline():
        sys.exit("stdin closed before the go-ahead")

    result = {}
    try:
        p.commit_transaction(60)
        result["commit"] = {"ok": True}
    except KafkaException as e:
        err = e.args[0]
        result["commit"] = {"ok": False, "code": err.name(), "requires_abort": err.txn_requires_abort(),
                            "retriable": err.retriable(), "fatal": err.fatal(), "message": err.str()}
    result["abort"] = attempt(lambda: p.abort_transaction(60))

    def second():
        p.begin_transaction()
        produce_all(p, a.topic, lines(a.second))
        p.commit_transaction(60)

    result["second_commit"] = attempt(second)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
