#!/usr/bin/env python3
"""Items/s of one distant worker at fixed credit 8, fixed credit 256 and adaptive credit, side by side.

Each case is a run of its own: a broker on a free loopback port, Scripts/chaos/tcp_delay_proxy.py
in front of its dispatch endpoint (DELAY ms each way), the worker of stage `work` (sleep 1 ms an
item, 2 slots) connected through the proxy, and a local worker for the final stage `out` (so
`work`'s outputs travel back through the proxy in its REPLYs: its credit comes back a whole round
trip after the REQUEST). The rate is taken from the sink file as it grows, from the time a fifth
of the items were in to the last, so start-up does not count. Every process is stopped at the end.

    python3 Scripts/bench/credit_bench.py --lancompute .build/release/lancompute [--delay-ms 50]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def line_count(path):
    try:
        with open(path, "rb") as sink:
            return sink.read().count(b"\n")
    except FileNotFoundError:
        return 0


def stop(processes):
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.time() + 5
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_case(binary, credit, items, delay_ms, timeout):
    work = tempfile.mkdtemp(prefix="lc-credit.")
    processes = []
    try:
        with open(os.path.join(work, "input.txt"), "w") as source:
            source.writelines(f"item {number}\n" for number in range(items))
        credit_line = f"    credit: {credit}\n" if credit else ""
        with open(os.path.join(work, "pipeline.yaml"), "w") as topology:
            topology.write(
                "version: 1\nname: far\nsource:\n  file: input.txt\nstages:\n"
                "  - name: work\n    builtin: sleep\n    options: {duration: 1ms}\n    replicas: 2\n" + credit_line +
                "  - name: out\n    builtin: identity\n    from: work\n    chain: false\n"
                "sink:\n  file: out.txt\n")
        port = free_port()
        dispatch = f"tcp://127.0.0.1:{port}"
        logs = open(os.path.join(work, "processes.log"), "w")
        proxy = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "Scripts/chaos/tcp_delay_proxy.py"), f"127.0.0.1:{port}", "--delay-ms", str(delay_ms)],
            stdout=subprocess.PIPE, stderr=logs, text=True)
        processes.append(proxy)
        proxy_port = int(proxy.stdout.readline().split()[1])
        broker = subprocess.Popen(
            [binary, "broker", "pipeline.yaml", "--bind", dispatch, "--aggregator", f"ipc://{work}/aggregator",
             "--events", f"ipc://{work}/events", "--json"],
            cwd=work, stdout=subprocess.PIPE, stderr=logs, text=True)
        processes.append(broker)
        processes.append(subprocess.Popen(
            [binary, "worker", "--broker", f"tcp://127.0.0.1:{proxy_port}", "--stages", "work"], cwd=work, stdout=logs, stderr=logs))
        processes.append(subprocess.Popen([binary, "worker", "--broker", dispatch, "--stages", "out"], cwd=work, stdout=logs, stderr=logs))
        sink = os.path.join(work, "out.txt")
        fifth_at = last_at = None
        credit_seen = rtt_seen = None
        begin = time.time()
        while time.time() - begin < timeout and broker.poll() is None:
            done = line_count(sink)
            if fifth_at is None and done >= items // 5:
                fifth_at = time.time()  # the same clock as a file's modification time
            if credit_seen is None and done >= items // 2:
                report = subprocess.run([binary, "nodes", dispatch, "--json"], capture_output=True, text=True, timeout=20)
                try:
                    for node in json.loads(report.stdout)["nodes"]:
                        if node.get("stages") == ["work"]:
                            credit_seen = (node.get("credits") or {}).get("work")
                            rtt_seen = node.get("rtt_ms")
                except (ValueError, KeyError):
                    pass
            if done >= items:
                break
            time.sleep(0.02)
        output, _ = broker.communicate(timeout=60)
        # The last line's time is the sink's last write (the loop may have been asking `nodes` then).
        if line_count(sink) >= items:
            last_at = os.path.getmtime(sink)
        summary = json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
        written = line_count(sink)
        rate = (items - items // 5) / (last_at - fifth_at) if fifth_at and last_at and last_at > fifth_at else 0.0
        return {"rate": rate, "items": items, "in_sink": written, "exactly_once": written == items and summary.get("items_out", summary.get("itemsOut")) == items,
                "credit_seen": credit_seen, "rtt_ms": rtt_seen}
    finally:
        stop(processes)
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lancompute", required=True)
    parser.add_argument("--delay-ms", type=float, default=50)
    parser.add_argument("--slow-items", type=int, default=800, help="items at fixed credit 8 (default 800, about 10 s)")
    parser.add_argument("--items", type=int, default=15000, help="items at credit 256 and adaptive (default 15,000)")
    parser.add_argument("--timeout", type=float, default=180)
    arguments = parser.parse_args()
    arguments.lancompute = os.path.abspath(arguments.lancompute)
    load = os.getloadavg()
    cases = [("fixed credit 8", 8, arguments.slow_items), ("fixed credit 256", 256, arguments.items), ("adaptive", None, arguments.items)]
    results = {}
    for name, credit, items in cases:
        print(f"{name}: {items} items ...", file=sys.stderr, flush=True)
        results[name] = run_case(arguments.lancompute, credit, items, arguments.delay_ms, arguments.timeout)
    after = os.getloadavg()
    print(f"delay {arguments.delay_ms:g} ms each way (round trip {2 * arguments.delay_ms:g} ms); stage: sleep 1 ms, 2 slots")
    print(f"load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
    print(f"{'case':<18} {'items/s':>9} {'credit seen':>12} {'rtt ms':>8} {'exactly once':>13}")
    for name, result in results.items():
        seen = "-" if result["credit_seen"] is None else str(result["credit_seen"])
        rtt = "-" if result["rtt_ms"] is None else f"{result['rtt_ms']:.1f}"
        print(f"{name:<18} {result['rate']:>9.0f} {seen:>12} {rtt:>8} {str(result['exactly_once']):>13}")
    reference = results["fixed credit 256"]["rate"]
    if reference > 0:
        print(f"adaptive / credit 256: {results['adaptive']['rate'] / reference:.2f}")
    bound = 8 / (2 * arguments.delay_ms / 1000)
    print(f"bound of credit 8 on this link: {bound:.0f} items/s; adaptive / that bound: {results['adaptive']['rate'] / bound:.1f}x")
    if not all(result["exactly_once"] for result in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
