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


def source(endpoint, count, size, rate, started):
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.bind(endpoint)
    time.sleep(0.5)  # let every worker connect before the first item
    payload = b"x" * size
    interval = 1.0 / rate if rate else 0
    started.value = time.time()
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


def worker(pull_endpoint, push_endpoint, work, bind):
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    if bind:
        pull.bind(pull_endpoint)
    else:
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


def sink(endpoint, count, results, measure_latency, started):
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(endpoint)
    latencies = []
    for _ in range(count):
        item = pull.recv()
        if measure_latency:
            latencies.append(time.time() - float(item[:20]))
    # From the source's first send to the sink's last receive, as LANCompute's wall time counts.
    elapsed = time.time() - started.value
    results.put((elapsed, latencies))
    pull.close(linger=0)
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
    parser.add_argument("--transport", choices=["tcp", "ipc"], default="tcp")
    parser.add_argument("--port", type=int, default=47100, help="first loopback port (tcp)")
    args = parser.parse_args()

    if args.stages > 1 and args.workers > 1:
        parser.error("with several stages, one worker per stage (later stages bind their PULL)")
    if args.transport == "ipc":
        endpoints = [f"ipc://{args.dir}/ref-{stage}" for stage in range(args.stages + 1)]
    else:
        endpoints = [f"tcp://127.0.0.1:{args.port + stage}" for stage in range(args.stages + 1)]
    results = mp.Queue()
    started = mp.Value("d", 0.0)
    sink_process = mp.Process(target=sink, args=(endpoints[-1], args.count, results, args.rate > 0, started), daemon=True)
    sink_process.start()
    workers = []
    for stage in range(args.stages):
        for _ in range(args.workers):
            # The first stage connects to the source's PUSH; later stages bind their own PULL.
            process = mp.Process(target=worker, daemon=True, args=(
                endpoints[stage], endpoints[stage + 1], args.work if stage == 0 else "identity", stage > 0))
            process.start()
            workers.append(process)
    source_process = mp.Process(target=source, args=(endpoints[0], args.count, args.size, args.rate, started), daemon=True)
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
