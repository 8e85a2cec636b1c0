#!/usr/bin/env python3
"""The raw pyzmq reference for Scripts/bench/lan: one role of a PUSH/PULL pipeline per process.

    lan_reference.py source HOST:PORT COUNT SIZE     # PUSH bound, COUNT items of SIZE bytes
    lan_reference.py worker SOURCE SINK              # PULL from SOURCE, PUSH each item on to SINK
    lan_reference.py sink HOST:PORT COUNT            # PULL bound; prints {"items_per_second": ...}

No broker, no acknowledgements, nothing tracked: what the link and libzmq give. The sink's time
runs from its first item to its last.
"""
import json
import sys
import time

import zmq


def main():
    role = sys.argv[1]
    context = zmq.Context()
    if role == "source":
        push = context.socket(zmq.PUSH)
        push.bind(f"tcp://{sys.argv[2]}")
        count, size = int(sys.argv[3]), int(sys.argv[4])
        time.sleep(1.0)  # let both workers connect, so PUSH shares the items between them
        payload = b"x" * size
        for _ in range(count):
            push.send(payload, copy=False)
        push.close(linger=-1)
    elif role == "worker":
        pull = context.socket(zmq.PULL)
        pull.connect(f"tcp://{sys.argv[2]}")
        push = context.socket(zmq.PUSH)
        push.connect(f"tcp://{sys.argv[3]}")
        while True:
            push.send(pull.recv(copy=False), copy=False)
    elif role == "sink":
        pull = context.socket(zmq.PULL)
        pull.bind(f"tcp://{sys.argv[2]}")
        count = int(sys.argv[3])
        pull.recv()
        start = time.monotonic()
        for _ in range(count - 1):
            pull.recv(copy=False)
        elapsed = time.monotonic() - start
        print(json.dumps({"items": count, "seconds": elapsed, "items_per_second": (count - 1) / elapsed}))
        pull.close(linger=0)
    context.term()


if __name__ == "__main__":
    main()
