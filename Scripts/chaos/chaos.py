#!/usr/bin/env python3
"""The chaos suite's measuring tools: counts the sink from outside, times detection and recovery, delays TCP, plays a deaf subscriber."""

import argparse
import asyncio
import collections
import json
import os
import socket
import sys
import time

# How long after a fault the feed must have been recorded for a missing detection to count.
UNOBSERVED_SECONDS = 3.0


def free_ports(count):
    """Ports the kernel just handed out on loopback; closed again so a broker can bind them."""
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    print(" ".join(map(str, ports)))


def read_lines(path):
    if not path or not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        return f.read().splitlines()


def dead_letter_items(path):
    items = []
    for raw in read_lines(path):
        try:
            record = json.loads(raw)
        except ValueError:
            items.append(b"<unparsable dead letter>")
            continue
        item = record.get("item")
        items.append(item.encode() if isinstance(item, str) else b"<base64 item>")
    return items


def read_events(path):
    events = []
    for raw in read_lines(path):
        try:
            events.append(json.loads(raw))
        except ValueError:
            pass
    return events


def read_marks(path):
    """The harness's own timeline: `TIME KIND [PID]` lines, KIND being fault or heal."""
    marks = []
    for raw in read_lines(path):
        parts = raw.decode().split()
        if len(parts) >= 2:
            marks.append((float(parts[0]), parts[1], parts[2] if len(parts) > 2 else None))
    return marks


def detection_times(events, marks):
    """Per fault: seconds until the broker published that worker's expiry or its node's leaving.

    A fault that names a pid is matched to events about workers of that process only
    (node.joined carries the pid, worker.ready ties a worker to its node)."""
    node_pid = {}
    worker_node = {}
    for e in events:
        if e.get("type") == "event.node.joined":
            node_pid[e.get("id")] = str(e.get("capabilities", {}).get("pid", ""))
        elif e.get("type") == "event.worker.ready":
            worker_node[e.get("id")] = e.get("node")
    expiries = []
    for e in events:
        if e.get("type") == "event.worker.expired":
            expiries.append((e["ts"], node_pid.get(worker_node.get(e.get("id")))))
        elif e.get("type") == "event.node.left" and e.get("reason") != "broker-stopping":
            expiries.append((e["ts"], node_pid.get(e.get("id"))))
    expiries.sort()
    # A fault just before the run ended may simply not have been seen yet: only a fault the feed
    # was recorded for a while after counts as never detected.
    horizon = max((e.get("ts", 0) for e in events), default=0)
    results = []
    for t, kind, pid in marks:
        if kind != "fault":
            continue
        # Event stamps have millisecond resolution: allow for rounding.
        found = next((ts for ts, p in expiries if ts >= t - 0.002 and (pid is None or p == pid)), None)
        if found is None and horizon - t < UNOBSERVED_SECONDS:
            continue
        results.append(None if found is None else max(0.0, found - t))
    return results


def recovery_times(sink_log, marks, finished_count):
    """Per heal: seconds until the sink grew after it (None if the sink was complete by then)."""
    growth = []
    for raw in read_lines(sink_log):
        t, n = raw.split()
        growth.append((float(t), int(n)))
    results = []
    for t, kind, _ in marks:
        if kind != "heal":
            continue
        before = max((n for ts, n in growth if ts <= t), default=0)
        if before >= finished_count:
            results.append("done")
            continue
        found = next((ts for ts, n in growth if ts > t and n > before), None)
        results.append(None if found is None else found - t)
    return results


def longest_stall(sink_log):
    """The longest time the sink did not grow between its first and its last line."""
    times = [float(raw.split()[0]) for raw in read_lines(sink_log)]
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def figure(values):
    measured = [v for v in values if isinstance(v, float)]
    if not values:
        return "-", None
    if not measured:
        return "none", None
    worst = max(measured)
    text = f"{sum(measured) / len(measured):.2f}s(max {worst:.2f}s,n={len(measured)}"
    missing = sum(1 for v in values if v is None)
    if missing:
        text += f",{missing} never"
    return text + ")", worst


def report(args):
    inputs = read_lines(args.input)
    sink = read_lines(args.sink)
    dead = dead_letter_items(args.dead_letter)
    expected = set(inputs)
    counts = collections.Counter(sink)
    in_sink = set(counts)
    dead_counts = collections.Counter(dead)
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    duplicated += sum(n - 1 for n in dead_counts.values() if n > 1)
    duplicated += len(in_sink & set(dead_counts))
    strangers = len((in_sink | set(dead_counts)) - expected)
    if args.items_read is not None:
        # A drained run read only part of the input: what it read must all be accounted for.
        read = args.items_read
        accounted = len(in_sink | set(dead_counts))
        lost = max(0, read - accounted)
        items_in = read
    else:
        items_in = len(inputs)
        lost = len(expected - in_sink - set(dead_counts))
    if args.acknowledged is not None:
        acked = set(read_lines(args.acknowledged))
        missing = len(acked - in_sink - set(dead_counts))
        if args.items_read is None:
            lost, items_in = missing, len(acked)
        else:
            # Both: every item the broker took is accounted for, and among them every line the
            # producer was told had been taken.
            lost = max(lost, missing)
    events = read_events(args.events)
    marks = read_marks(args.marks)
    detect, worst_detect = figure(detection_times(events, marks))
    recover, worst_recover = figure(recovery_times(args.sink_log, marks, len(expected)))

    expiries = sum(1 for e in events if e.get("type") == "event.worker.expired")
    stall = longest_stall(args.sink_log)

    failures, missed = [], []
    if lost:
        failures.append(f"{lost} lost")
    if duplicated:
        failures.append(f"{duplicated} duplicated")
    if strangers:
        failures.append(f"{strangers} sink lines that were never input")
    if args.expect_dead != "any" and len(dead) != int(args.expect_dead):
        failures.append(f"{len(dead)} dead-lettered, expected {args.expect_dead}")
    if args.must_detect and "never" in detect or args.must_detect and detect in ("-", "none"):
        failures.append("the broker never reported the fault (the fault had no effect, or detection failed)")
    if worst_detect is not None and worst_detect > args.detect_goal:
        missed.append(f"detect {worst_detect:.2f}s > {args.detect_goal}s")
    if worst_recover is not None and worst_recover > args.recover_goal:
        missed.append(f"recover {worst_recover:.2f}s > {args.recover_goal}s")
    if "never" in recover:
        missed.append("work never flowed again after a heal")
    if args.max_stall is not None and stall > args.max_stall:
        failures.append(f"the sink stalled for {stall:.2f}s (limit {args.max_stall}s)")
    for extra in args.fail or []:
        failures.append(extra)
    for note in args.missed or []:
        missed.append(note)

    verdict = "FAIL" if failures or (missed and args.strict_timing) else "PASS"
    line = (f"chaos {args.name}: in={items_in} out={len(sink)} lost={lost} duplicated={duplicated} "
            f"dead-lettered={len(dead)} detect={detect} recover={recover} expiries={expiries} "
            f"longest-stall={stall:.2f}s wall={args.wall:.1f}s {verdict}")
    if failures:
        line += " (" + "; ".join(failures) + ")"
    if missed:
        line += " MISSED GOAL: " + "; ".join(missed)
    print(line, flush=True)
    return 1 if verdict == "FAIL" else 0


def watch_sink(path, log, stop):
    """Appends `TIME LINES` to LOG each time the sink grows, until STOP exists."""
    lines, offset, inode = 0, 0, None
    with open(log, "a") as out:
        while not os.path.exists(stop):
            try:
                st = os.stat(path)
                if inode != st.st_ino or st.st_size < offset:
                    inode, offset, lines = st.st_ino, 0, 0
                if st.st_size > offset:
                    with open(path, "rb") as f:
                        f.seek(offset)
                        chunk = f.read(st.st_size - offset)
                    offset += len(chunk)
                    grown = chunk.count(b"\n")
                    if grown:
                        lines += grown
                        out.write(f"{time.time():.4f} {lines}\n")
                        out.flush()
            except FileNotFoundError:
                pass
            time.sleep(0.005)


async def delay_pipe(reader, writer, delay):
    """Forwards one direction, each chunk leaving `delay` seconds after it arrived, in order."""
    queue = asyncio.Queue()

    async def pump():
        while True:
            due, chunk = await queue.get()
            if chunk is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        writer.close()

    task = asyncio.ensure_future(pump())
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            queue.put_nowait((time.monotonic() + delay, chunk))
    except ConnectionError:
        pass
    queue.put_nowait((0, None))
    try:
        await task
    except ConnectionError:
        pass


async def delay_proxy(routes, delay):
    async def serve(listen_host, listen_port, target_host, target_port):
        async def handle(client_reader, client_writer):
            try:
                server_reader, server_writer = await asyncio.open_connection(target_host, target_port)
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(delay_pipe(client_reader, server_writer, delay),
                                 delay_pipe(server_reader, client_writer, delay), return_exceptions=True)
        server = await asyncio.start_server(handle, listen_host, listen_port)
        await server.serve_forever()

    await asyncio.gather(*(serve(*route) for route in routes))


def deaf_subscriber(endpoint, ready):
    """Subscribes to everything and never reads: the broker must not stall on it."""
    import zmq
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 10)
    sub.setsockopt(zmq.RCVBUF, 4096)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    open(ready, "w").close()
    while True:
        time.sleep(3600)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    ports = commands.add_parser("free-ports")
    ports.add_argument("count", type=int)
    r = commands.add_parser("report")
    r.add_argument("--name", required=True)
    r.add_argument("--input", required=True)
    r.add_argument("--sink", required=True)
    r.add_argument("--dead-letter")
    r.add_argument("--events")
    r.add_argument("--marks")
    r.add_argument("--sink-log")
    r.add_argument("--items-read", type=int)
    r.add_argument("--acknowledged", help="file of the lines a producer had confirmed")
    r.add_argument("--expect-dead", default="0")
    r.add_argument("--must-detect", action="store_true")
    r.add_argument("--detect-goal", type=float, default=1.5)
    r.add_argument("--recover-goal", type=float, default=2.0)
    r.add_argument("--strict-timing", action="store_true")
    r.add_argument("--max-stall", type=float, help="fail when the sink stops growing for longer")
    r.add_argument("--wall", type=float, default=0.0)
    r.add_argument("--fail", action="append", help="a failure the harness saw itself")
    r.add_argument("--missed", action="append", help="a goal the harness saw missed")
    w = commands.add_parser("watch-sink")
    w.add_argument("sink")
    w.add_argument("log")
    w.add_argument("stop")
    p = commands.add_parser("delay-proxy")
    p.add_argument("--delay", type=float, default=0.05)
    p.add_argument("routes", nargs="+", help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    d = commands.add_parser("deaf-subscriber")
    d.add_argument("endpoint")
    d.add_argument("ready")
    args = parser.parse_args()
    if args.command == "free-ports":
        free_ports(args.count)
    elif args.command == "report":
        sys.exit(report(args))
    elif args.command == "watch-sink":
        watch_sink(args.sink, args.log, args.stop)
    elif args.command == "delay-proxy":
        routes = []
        for route in args.routes:
            listen, target = route.split("=")
            lh, lp = listen.rsplit(":", 1)
            th, tp = target.rsplit(":", 1)
            routes.append((lh, int(lp), th, int(tp)))
        asyncio.run(delay_proxy(routes, args.delay))
    elif args.command == "deaf-subscriber":
        deaf_subscriber(args.endpoint, args.ready)


if __name__ == "__main__":
    main()
