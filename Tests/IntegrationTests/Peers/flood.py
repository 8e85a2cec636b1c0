#!/usr/bin/env python3
"""Floods a running broker from outside, then reports as one JSON line how it coped.

    flood.py --dispatch PORT --aggregator PORT --events PORT [--connections 1000] [--messages 10000]

1. Opens --connections raw TCP connections spread over the ports: half send nothing, half send
   random junk (a ZeroMQ greeting cut short, or bytes that are no greeting at all).
2. Sends --messages random multipart messages over real ZeroMQ connections (DEALER to dispatch,
   PUSH to the aggregator, subscriptions to events), some of them with MDP headers.
3. Sends one 8 MiB frame to every port (on events, as a subscription).
4. Waits (at most 20 s after they were opened) until the broker has closed every raw connection,
   and reports the longest any of them stayed open, and (--pid) the broker's peak resident memory. Every loop is bounded in count and time.
"""
import argparse, json, os, random, resource, selectors, socket, sys, time

import zmq

parser = argparse.ArgumentParser()
parser.add_argument("--dispatch", type=int, required=True)
parser.add_argument("--aggregator", type=int, required=True)
parser.add_argument("--events", type=int, required=True)
parser.add_argument("--connections", type=int, default=1000)
parser.add_argument("--messages", type=int, default=10000)
parser.add_argument("--big", type=int, default=8 << 20)
parser.add_argument("--seed", type=int, default=11)
parser.add_argument("--pid", type=int, help="the broker's process id, whose peak resident memory is reported")
args = parser.parse_args()
rng = random.Random(args.seed)
ports = [args.dispatch, args.aggregator, args.events]

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections + 512)), hard))

# 1. Idle and junk TCP connections.
selector = selectors.DefaultSelector()
opened_at = time.monotonic()
raw = []
opened = []
for index in range(args.connections):
    connection = socket.create_connection(("127.0.0.1", ports[index % len(ports)]), timeout=5)
    if index % 2 == 1:
        if index % 4 == 1:
            junk = b"\xff" + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 9)))  # a greeting cut short
        else:
            junk = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" if index % 8 == 3 else bytes(rng.randrange(256) for _ in range(64))
        try:
            connection.sendall(junk)
        except OSError:
            pass
    connection.setblocking(False)
    selector.register(connection, selectors.EVENT_READ, index)
    raw.append(connection)
    opened.append(time.monotonic())
opened_seconds = time.monotonic() - opened_at

# 2. Random multipart messages over real ZeroMQ connections.
context = zmq.Context()
def connect(kind, port):
    s = context.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM, 0)
    s.setsockopt(zmq.SNDTIMEO, 2000)
    s.connect(f"tcp://127.0.0.1:{port}")
    return s
dealers = [connect(zmq.DEALER, args.dispatch) for _ in range(8)]
push = connect(zmq.PUSH, args.aggregator)
xsub = connect(zmq.XSUB, args.events)
headers = [b"", b"MDPW01", b"MDPC01", b"\x01", b"\x02", b"\x03", b"\x04", b"\x05", b"upper", b"mmi.service",
           b"lancompute.intake", b"\x02\x00\x00\x00\x01", b"\x01\x00\x00\x00\xff"]
def random_frame():
    if rng.random() < 0.4:
        return rng.choice(headers)
    return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 48)))
sent = {"dispatch": 0, "aggregator": 0, "events": 0}
failed_sends = 0
for number in range(args.messages):
    frames = [random_frame() for _ in range(rng.randrange(1, 7))]
    try:
        if number % 10 < 7:
            rng.choice(dealers).send_multipart(frames)
            sent["dispatch"] += 1
        elif number % 10 < 9:
            push.send_multipart(frames)
            sent["aggregator"] += 1
        else:
            xsub.send(bytes([rng.choice([0, 1])]) + frames[0])
            sent["events"] += 1
    except zmq.ZMQError:
        failed_sends += 1

# 3. One 8 MiB frame to every port. The subscription goes over a hand-made ZMTP 3.0 connection:
# libzmq's own XSUB would first store it in its trie, which recursion per byte cannot survive.
big = os.urandom(args.big)
for s, frames in ((dealers[0], [b"", b"MDPC01", b"upper", big]), (push, [big])):
    try:
        s.send_multipart(frames)
    except zmq.ZMQError:
        failed_sends += 1
def zmtp_subscribe(port, topic):
    greeting = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + bytes(31)
    ready = b"\x05READY" + bytes([11]) + b"Socket-Type" + (4).to_bytes(4, "big") + b"XSUB"
    subscription = b"\x01" + topic
    connection = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        connection.sendall(greeting + b"\x04" + bytes([len(ready)]) + ready)
        connection.sendall(b"\x02" + len(subscription).to_bytes(8, "big") + subscription)
    except OSError:
        pass  # the broker may close the connection before it has read it all: that is the point
    return connection
big_subscriber = zmtp_subscribe(args.events, big)

# 4. Wait until the broker has closed every raw connection (bounded: 20 s after they were opened).
closed_after = {}
deadline = opened_at + 20
while len(closed_after) < len(raw) and time.monotonic() < deadline:
    for key, _ in selector.select(timeout=0.2):
        connection, index = key.fileobj, key.data
        try:
            data = connection.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if data == b"":
            closed_after[index] = time.monotonic() - opened[index]
            selector.unregister(connection)
            connection.close()
for connection in raw:
    if connection.fileno() != -1:
        connection.close()
big_subscriber.close()
for s in dealers + [push, xsub]:
    s.close()
context.term()

def peak_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None

times = sorted(closed_after.values())
print(json.dumps({
    "connections": len(raw),
    "opened_seconds": round(opened_seconds, 3),
    "closed": len(times),
    "still_open": len(raw) - len(times),
    "longest_open_seconds": round(times[-1], 3) if times else None,
    "messages": sent,
    "failed_sends": failed_sends,
    "broker_peak_rss_kb": peak_rss_kb(args.pid) if args.pid else None,
    "broker_alive": os.path.exists(f"/proc/{args.pid}") if args.pid else None,
}))
