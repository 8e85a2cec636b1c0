#!/usr/bin/env python3
"""One system of Scripts/bench/peers on the SHA-256 1 KiB workload; prints one JSON object.

    peers.py lancompute BINARY DIR COUNT   # lancompute run, 2 workers, then a pull/push pipeline for latency
    peers.py dask COUNT | ray COUNT | celery COUNT REDIS_URL

Throughput: COUNT distinct 1 KiB items, each hashed by one task (SHA-256, 64 hex digits back), on
2 worker processes, from the first submission to the last result. Latency: one item at a time
(the next submitted when the previous result is back), LATENCY_ITEMS of them after 20 not
counted, p50 and p99 of the round trip.
"""
import hashlib
import json
import os
import subprocess
import sys
import time

LATENCY_ITEMS = int(os.environ.get("LATENCY_ITEMS", "500"))
WARMUP = 20


def items(count):
    return [os.urandom(1024) for _ in range(count)]


def sha(payload):
    return hashlib.sha256(payload).hexdigest()


def percentiles(latencies):
    latencies = sorted(latencies[WARMUP:])
    return {"p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000}


def one_at_a_time(call):
    latencies = []
    for payload in items(LATENCY_ITEMS + WARMUP):
        start = time.perf_counter()
        call(payload)
        latencies.append(time.perf_counter() - start)
    return percentiles(latencies)


def run_lancompute(binary, work, count):
    import zmq
    # Throughput: the same items as a file of base64-free raw lines would not be 1 KiB each, so
    # the source generates COUNT items of 1 KiB itself (as Scripts/bench/pipeline does).
    with open(f"{work}/peers-sha.yaml", "w") as f:
        f.write(f"version: 1\nname: peers-sha\nsource:\n  generate: {{count: {count}, size: 1KiB}}\n"
                "stages:\n  - name: hash\n    builtin: sha256\nsink:\n  file: peers-out.txt\n")
    out = subprocess.run([binary, "run", "peers-sha.yaml", "--workers", "2", "--events", "none", "--json"],
                         cwd=work, check=True, capture_output=True, text=True).stdout
    rate = json.loads(out.strip().splitlines()[-1])["itemsPerSecond"]
    with open(f"{work}/peers-latency.yaml", "w") as f:
        f.write(f"version: 1\nname: peers-latency\nsource:\n  pull: ipc://{work}/peers-feed\n"
                f"stages:\n  - name: hash\n    builtin: sha256\nsink:\n  push: ipc://{work}/peers-sink\n")
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(f"ipc://{work}/peers-sink")
    run = subprocess.Popen([binary, "run", "peers-latency.yaml", "--workers", "2", "--events", "none", "--quiet"],
                           cwd=work, stderr=subprocess.DEVNULL)
    push = context.socket(zmq.PUSH)
    push.connect(f"ipc://{work}/peers-feed")
    time.sleep(1.0)
    pull.setsockopt(zmq.RCVTIMEO, 10_000)

    def call(payload):
        push.send(payload)
        digest = pull.recv()
        assert len(digest) >= 64, digest

    latency = one_at_a_time(call)
    run.terminate()
    run.wait(timeout=30)
    push.close(linger=0)
    pull.close(linger=0)
    context.term()
    return {"items_per_second": rate, **latency}


def run_dask(count):
    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        data = items(count)
        client.submit(sha, b"warm").result()
        start = time.perf_counter()
        # pure=False: distinct tasks even for equal inputs, as distinct items are.
        futures = client.map(sha, data, pure=False)
        results = client.gather(futures)
        elapsed = time.perf_counter() - start
        assert results[0] == sha(data[0])
        latency = one_at_a_time(lambda payload: client.submit(sha, payload, pure=False).result())
    return {"items_per_second": count / elapsed, **latency}


def run_ray(count):
    import ray
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    remote_sha = ray.remote(sha)
    data = items(count)
    ray.get(remote_sha.remote(b"warm"))
    start = time.perf_counter()
    results = ray.get([remote_sha.remote(payload) for payload in data])
    elapsed = time.perf_counter() - start
    assert results[0] == sha(data[0])
    latency = one_at_a_time(lambda payload: ray.get(remote_sha.remote(payload)))
    ray.shutdown()
    return {"items_per_second": count / elapsed, **latency}


def run_celery(count, redis_url):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ["PEERS_REDIS"] = redis_url
    from peers_celery import app, hash_item
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "peers_celery", "worker", "--concurrency", "2",
                               "--pool", "prefork", "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
                              cwd=os.path.dirname(os.path.abspath(__file__)), stderr=subprocess.DEVNULL)
    try:
        hash_item.delay(b"warm".hex()).get(timeout=60)
        data = items(count)
        start = time.perf_counter()
        results = [hash_item.delay(payload.hex()) for payload in data]
        digests = [result.get(timeout=600) for result in results]
        elapsed = time.perf_counter() - start
        assert digests[0] == sha(data[0])
        latency = one_at_a_time(lambda payload: hash_item.delay(payload.hex()).get(timeout=60))
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return {"items_per_second": count / elapsed, **latency}


def main():
    system = sys.argv[1]
    if system == "lancompute":
        report = run_lancompute(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif system == "dask":
        report = run_dask(int(sys.argv[2]))
    elif system == "ray":
        report = run_ray(int(sys.argv[2]))
    elif system == "celery":
        report = run_celery(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(f"peers: unknown system {system}")
    print(json.dumps({"system": system, **report}))


if __name__ == "__main__":
    main()
