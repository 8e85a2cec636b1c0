#!/usr/bin/env python3
"""The reference for Scripts/bench/pipeline: the same pipelines in raw pyzmq.

PUSH/PULL only: a source process, worker processes per stage, a sink process.
No broker, no acknowledgements, no redelivery: what libzmq and Python give
without any of the guarantees LANCompute adds. Prints one JSON object.
"""
import argparse
import hashlib
import json
import multiprocessing as mp
import time

import zmq


def source(endpoint, count, size, rate):
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.bind(endpoint)
    time.sleep(0.5)  # let every worker connect before the first item
    payload = b"x" * size
    interval = 1.0 / rate if rate else 0
    start = time.perf_counter()
    for index in range(count):
        if interval:
            target = start + index * interval
            while time.perf_counter() < target:
                pass
            push.send(b"%.9f" % time.time() + payload[20:] if size > 20 else b"%.9f" % time.time())
        else:
            push.send(payload)
    push.close(linger=-1)
    context.term()


def worker(pull_endpoint, push_endpoint, work):
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.connect(pull_endpoint)
    push = context.socket(zmq.PUSH)
    push.connect(push_endpoint)
    while True:
        item = pull.recv()
        if item == b"STOP":
            break
        if work == "sha256":
            push.send(hashlib.sha256(item).hexdigest().encode())
        else:
            push.send(item)
    push.close(linger=-1)
    context.term()


def sink(endpoint, count, results, measure_latency):
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(endpoint)
    latencies = []
    first = pull.recv()
    start = time.perf_counter()
    if measure_latency:
        latencies.append(time.time() - float(first[:20]))
    for _ in range(count - 1):
        item = pull.recv()
        if measure_latency:
            latencies.append(time.time() - float(item[:20]))
    elapsed = time.perf_counter() - start
    results.put((elapsed, latencies))
    context.term()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="worker processes per stage")
    parser.add_argument("--work", choices=["sha256", "identity"], default="identity")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0, help="items per second (0: as fast as possible)")
    parser.add_argument("--dir", required=True, help="a directory for ipc endpoints")
    args = parser.parse_args()

    endpoints = [f"ipc://{args.dir}/ref-{stage}" for stage in range(args.stages + 1)]
    results = mp.Queue()
    sink_process = mp.Process(target=sink, args=(endpoints[-1], args.count, results, args.rate > 0))
    sink_process.start()
    workers = []
    for stage in range(args.stages):
        for _ in range(args.workers):
            process = mp.Process(target=worker, args=(endpoints[stage], endpoints[stage + 1],
                                                      args.work if stage == 0 else "identity"))
            process.start()
            workers.append(process)
    # Stages after the first bind their own PULL: make intermediate hops bind-side PULLs.
    source_process = mp.Process(target=source, args=(endpoints[0], args.count, args.size, args.rate))
    source_process.start()
    elapsed, latencies = results.get(timeout=600)
    for process in workers:
        process.terminate()
    source_process.join(timeout=5)
    sink_process.join(timeout=5)
    report = {"items": args.count, "seconds": elapsed, "items_per_second": args.count / elapsed}
    if latencies:
        latencies.sort()
        report["p50_ms"] = latencies[len(latencies) // 2] * 1000
        report["p99_ms"] = latencies[int(len(latencies) * 0.99)] * 1000
    print(json.dumps(report))


if __name__ == "__main__":
    main()
