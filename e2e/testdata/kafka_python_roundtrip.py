"""Produce N records with kafka-python and consume them back in a group.

Prints one JSON object: {"brokers": {"<id>": "host:port", ...}, "consumed": [values...]}.
kafka-python asks Metadata v1, which cannot auto-create topics on kfake: the topic must exist.
"""
import argparse
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer


def broker_map(cluster):
    return {str(b.nodeId): "%s:%d" % (b.host, b.port) for b in cluster.brokers()}


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

    p = KafkaProducer(bootstrap_servers=[a.bootstrap], acks="all", client_id="okp-e2e-kafka-python",
                      request_timeout_ms=15000, max_block_ms=15000)
    futures = [p.send(a.topic, value=("%s-%05d" % (a.prefix, i)).encode()) for i in range(a.count)]
    p.flush(timeout=max(1.0, deadline - time.monotonic()))
    for f in futures:
        f.get(timeout=max(1.0, deadline - time.monotonic()))
    brokers = broker_map(p._metadata)
    p.close(timeout=5)

    c = KafkaConsumer(a.topic, bootstrap_servers=[a.bootstrap], group_id=a.group,
                      auto_offset_reset="earliest", client_id="okp-e2e-kafka-python-consumer",
                      request_timeout_ms=15000)
    consumed = []
    try:
        while len(consumed) < a.count:
            if time.monotonic() > deadline:
                sys.exit("consume: timed out after %d of %d records" % (len(consumed), a.count))
            for recs in c.poll(timeout_ms=500).values():
                consumed.extend(r.value.decode() for r in recs)
        for k, v in broker_map(c._client.cluster).items():
            brokers.setdefault(k, v)
    finally:
        c.close()
    json.dump({"brokers": brokers, "consumed": consumed}, sys.stdout)


if __name__ == "__main__":
    main()
