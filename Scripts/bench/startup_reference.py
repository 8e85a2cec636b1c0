#!/usr/bin/env python3
"""The reference for Scripts/bench/startup: a small job as a hand-written pyzmq program.

One process: a PUSH socket feeds COUNT items of SIZE bytes to a PULL socket over inproc, each
is hashed with SHA-256, and the hex digests are written to OUT and fsynced. What a start, a
tiny job and an exit cost with no broker, no workers and no guarantees.
"""
import hashlib
import os
import sys

import zmq

count, size, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
context = zmq.Context()
push = context.socket(zmq.PUSH)
push.bind("inproc://items")
pull = context.socket(zmq.PULL)
pull.connect("inproc://items")
for index in range(count):
    push.send(b"x" * size)
with open(out, "w") as sink:
    for _ in range(count):
        sink.write(hashlib.sha256(pull.recv()).hexdigest() + "\n")
    sink.flush()
    os.fsync(sink.fileno())
push.close(linger=0)
pull.close(linger=0)
context.term()
