#!/usr/bin/env python3
"""Feeds a running LANCompute pipeline at a fixed rate and measures end-to-end latency.

The pipeline's source is `pull: FEED` and its sink is `push: SINK`: this script PUSHes
items that carry their send time, PULLs the outputs, and prints one JSON object with
the latency percentiles (milliseconds) of every item it got back.
"""
import argparse
import json
import threading
import time

import zmq


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--feed", required=True, help="the broker's pull source endpoint")
    parser.add_argument("--sink", required=True, help="the endpoint to bind for the pipeline's push sink")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200, help="items sent first and not measured")
    args = parser.parse_args()

    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(args.sink)
    push = context.socket(zmq.PUSH)
    push.connect(args.feed)
    time.sleep(1.0)

    total = args.warmup + args.count
    latencies = []
    received = [0]

    def collect():
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        deadline = time.time() + total / args.rate + 30
        while received[0] < total and time.time() < deadline:
            if not poller.poll(200):
                continue
            item = pull.recv()
            now = time.time()
            received[0] += 1
            index, sent = item.split(b" ", 1)
            if int(index) >= args.warmup:
                latencies.append(now - float(sent))

    collector = threading.Thread(target=collect)
    collector.start()
    interval = 1.0 / args.rate
    start = time.perf_counter()
    for index in range(total):
        target = start + index * interval
        while time.perf_counter() < target:
            time.sleep(max(0.0, min(interval / 4, target - time.perf_counter())))
        push.send(b"%d %.9f" % (index, time.time()))
    collector.join()
    latencies.sort()
    report = {"sent": total, "received": received[0], "measured": len(latencies)}
    if latencies:
        report["p50_ms"] = latencies[len(latencies) // 2] * 1000
        report["p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        report["max_ms"] = latencies[-1] * 1000
    print(json.dumps(report))
    push.close(linger=1000)
    pull.close(linger=0)
    context.term()


if __name__ == "__main__":
    main()
