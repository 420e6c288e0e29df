"""Produce N records with confluent-kafka (librdkafka) and consume them back in a group.

Prints one JSON object: {"brokers": {"<id>": "host:port", ...}, "consumed": [values...]}.
Every wait is bounded; failures exit non-zero with the reason on stderr.
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    deadline = time.monotonic() + a.timeout

    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "client.id": "okp-e2e-confluent"})
    for i in range(a.count):
        p.produce(a.topic, value="%s-%05d" % (a.prefix, i), on_delivery=on_delivery)
        p.poll(0)
    left = p.flush(max(1.0, deadline - time.monotonic()))
    if left or errors:
        sys.exit("produce: %d undelivered, errors: %s" % (left, errors[:5]))
    brokers = {str(b.id): "%s:%d" % (b.host, b.port) for b in p.list_topics(timeout=10).brokers.values()}

    c = Consumer({
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "client.id": "okp-e2e-confluent-consumer",
    })
    c.subscribe([a.topic])
    consumed = []
    try:
        while len(consumed) < a.count:
            if time.monotonic() > deadline:
                sys.exit("consume: timed out after %d of %d records" % (len(consumed), a.count))
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                sys.exit("consume: %s" % m.error())
            consumed.append(m.value().decode())
        for b in c.list_topics(timeout=10).brokers.values():
            brokers.setdefault(str(b.id), "%s:%d" % (b.host, b.port))
    finally:
        c.close()
    json.dump({"brokers": brokers, "consumed": consumed}, sys.stdout)


if __name__ == "__main__":
    main()
