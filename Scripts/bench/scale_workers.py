#!/usr/bin/env python3
"""Many plain MDP/0.1 workers (DEALER, credit 1) on one broker: items/s, broker CPU and RSS, dispatch latency.

The workers run in a worker host: with --host c (the default of Scripts/bench/scale) the C
program Scripts/bench/scale_workers.c, whose threads each serve their share of the DEALERs from
one epoll set; with --host python, a few Python processes (--processes), each serving hundreds
of DEALER sockets from one zmq.Poller loop. Both speak the protocol of
Topologies/workers/mdp_worker.py: READY, then one REQUEST at a time, each answered with a REPLY
carrying the body unchanged; HEARTBEAT when idle. The broker is
either `lancompute broker` (--broker lancompute) or, as the reference, a minimal raw pyzmq
ROUTER (--broker reference) that answers every READY or REPLY with the next REQUEST and keeps
no other state: what the same worker processes reach without any of LANCompute's bookkeeping.

Dispatch latency: from a worker's REPLY (which gives its credit back) to its next REQUEST, as the
worker sees it, so it includes the worker host's own poll loop. Prints one JSON object.
"""
import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time

import zmq

WORKER, READY, REQUEST, REPLY, HEARTBEAT = b"MDPW01", b"\x01", b"\x02", b"\x03", b"\x04"


def worker_host(endpoint, service, count, served, measuring, samples_out, heartbeat, stop):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    context = zmq.Context()
    context.set(zmq.MAX_SOCKETS, count + 64)
    sockets, last_sent, replied_at = [], {}, {}
    poller = zmq.Poller()
    for _ in range(count):
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(endpoint)
        socket.send_multipart([b"", WORKER, READY, service])
        last_sent[socket] = time.monotonic()
        poller.register(socket, zmq.POLLIN)
        sockets.append(socket)
    samples, seen = [], 0
    next_sweep = time.monotonic() + heartbeat / 2
    while not stop.value:
        for socket, _ in poller.poll(100):
            while True:
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) >= 5 and frames[2] == REQUEST:
                    now = time.monotonic()
                    if measuring.value and socket in replied_at:
                        seen += 1
                        # Reservoir sampling: a fair sample of at most 50,000 gaps per process.
                        if len(samples) < 50_000:
                            samples.append(now - replied_at[socket])
                        elif random.randrange(seen) < 50_000:
                            samples[random.randrange(50_000)] = now - replied_at[socket]
                    socket.send_multipart([b"", WORKER, REPLY, frames[3], b"", *frames[5:]])
                    replied_at[socket] = last_sent[socket] = time.monotonic()
                    served.value += 1
        now = time.monotonic()
        if now >= next_sweep:
            next_sweep = now + heartbeat / 2
            for socket in sockets:
                if now - last_sent[socket] >= heartbeat:
                    socket.send_multipart([b"", WORKER, HEARTBEAT])
                    last_sent[socket] = now
    samples_out.put(samples)
    for socket in sockets:
        socket.close(linger=0)
    context.term()


def reference_broker(port_out, stop, size):
    """A ROUTER that hands an item to whichever worker just gave its credit back; nothing tracked."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    port_out.value = port
    payload = b"x" * size
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    while not stop.value:
        if not poller.poll(100):
            continue
        for _ in range(1000):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(frames) >= 4 and frames[3] in (READY, REPLY):
                router.send_multipart([frames[0], b"", WORKER, REQUEST, b"client", b"", payload])
    # destroy, not term: term waits for every socket's teardown and once hung with 500 peers.
    context.destroy(linger=0)


def proc_stat(pid):
    """(utime + stime in seconds, RSS in bytes) of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
    rss_pages = int(fields[21])
    return ticks / os.sysconf("SC_CLK_TCK"), rss_pages * os.sysconf("SC_PAGE_SIZE")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", choices=["lancompute", "reference"], required=True)
    parser.add_argument("--label", help="the broker's name in the report (default: --broker)")
    parser.add_argument("--binary", help="the lancompute binary (with --broker lancompute)")
    parser.add_argument("--host", choices=["c", "python"], default="python", help="the worker host")
    parser.add_argument("--host-binary", help="the built scale_workers.c (with --host c)")
    parser.add_argument("--threads", type=int, default=2, help="worker threads of the C host")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the last worker registered")
    parser.add_argument("--window", type=float, default=5.0, help="seconds measured")
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--heartbeat", type=float, default=1.0, help="heartbeat interval, seconds")
    args = parser.parse_args()

    stop = mp.Value("b", 0, lock=False)
    measuring = mp.Value("b", 0, lock=False)
    broker_process = reference = None
    if args.broker == "lancompute":
        topology = os.path.join(args.dir, "scale.yaml")
        with open(topology, "w") as f:
            f.write(f"""version: 1
name: bench-scale
source:
  generate: {{count: 100000000, size: {args.size}}}
stages:
  - name: echo
sink:
  file: {args.dir}/scale-out.txt
""")
        log = open(os.path.join(args.dir, "broker.log"), "w")
        broker_process = subprocess.Popen(
            [args.binary, "broker", topology, "--bind", "tcp://127.0.0.1:*", "--aggregator", f"ipc://{args.dir}/agg",
             "--events", "none", "--heartbeat-interval", f"{int(args.heartbeat * 1000)}ms", "--log-level", "warning"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        line = broker_process.stderr.readline()
        if "dispatch " not in line:
            sys.exit(f"scale bench: the broker did not start: {line}")
        endpoint = line.split("dispatch ", 1)[1].split(",", 1)[0].strip()
        pid = broker_process.pid
        # Keep reading its log so it never blocks on a full pipe.
        import threading
        threading.Thread(target=lambda: [log.write(l) for l in broker_process.stderr], daemon=True).start()
    else:
        port = mp.Value("i", 0, lock=False)
        reference = mp.Process(target=reference_broker, args=(port, stop, args.size), daemon=True)
        reference.start()
        while port.value == 0:
            time.sleep(0.01)
        endpoint = f"tcp://127.0.0.1:{port.value}"
        pid = reference.pid

    if args.host == "c":
        # The C host times its own window; the broker's CPU is read when it opens and closes.
        host = subprocess.Popen(
            [args.host_binary, "--endpoint", endpoint, "--service", "echo", "--workers", str(args.workers),
             "--threads", str(args.threads), "--heartbeat", str(args.heartbeat), "--warmup", str(args.warmup),
             "--window", str(args.window)], stdout=subprocess.PIPE, text=True)
        if host.stdout.readline().strip() != "measuring":
            sys.exit("scale bench: the C worker host did not start")
        cpu0, _ = proc_stat(pid)
        host_cpu0, _ = proc_stat(host.pid)
        t0 = time.monotonic()
        if host.stdout.readline().strip() != "window-end":
            sys.exit("scale bench: the C worker host stopped before the end of its window")
        cpu1, rss = proc_stat(pid)
        host_cpu1, _ = proc_stat(host.pid)
        t1 = time.monotonic()
        measured = json.loads(host.stdout.readline())
        host.wait(timeout=60)
        stop.value = 1
        samples = []
    else:
        measured = None
        per_process = [args.workers // args.processes + (1 if i < args.workers % args.processes else 0) for i in range(args.processes)]
        counters = [mp.Value("q", 0, lock=False) for _ in per_process]
        samples_out = mp.Queue()
        hosts = [mp.Process(target=worker_host, args=(endpoint, b"echo", n, counters[i], measuring, samples_out, args.heartbeat, stop))
                 for i, n in enumerate(per_process)]
        for host in hosts:
            host.start()
        time.sleep(args.warmup)
        cpu0, _ = proc_stat(pid)
        served0, t0 = sum(c.value for c in counters), time.monotonic()
        measuring.value = 1
        time.sleep(args.window)
        measuring.value = 0
        cpu1, rss = proc_stat(pid)
        served1, t1 = sum(c.value for c in counters), time.monotonic()
        stop.value = 1
        samples = []
        for _ in hosts:
            samples.extend(samples_out.get(timeout=60))
        for host in hosts:
            host.join(timeout=10)
    if broker_process:
        broker_process.kill()
        broker_process.wait()
    else:
        reference.join(timeout=10)
        if reference.is_alive():
            reference.kill()
    elapsed = t1 - t0
    report = {"broker": args.label or args.broker, "workers": args.workers, "host": args.host,
              "broker_cpu_cores": (cpu1 - cpu0) / elapsed, "broker_rss_mib": rss / 2**20}
    if measured:
        report.update(measured)
        report["host_cpu_cores"] = (host_cpu1 - host_cpu0) / elapsed
    else:
        samples.sort()
        report.update({
            "processes": args.processes, "items_per_second": (served1 - served0) / elapsed,
            "dispatch_p50_ms": samples[len(samples) // 2] * 1000 if samples else None,
            "dispatch_p99_ms": samples[int(len(samples) * 0.99)] * 1000 if samples else None,
            "ever_served": served1,
        })
    print(json.dumps(report))


if __name__ == "__main__":
    main()
