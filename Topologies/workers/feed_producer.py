#!/usr/bin/env python3
"""An acknowledged-intake producer (Docs/protocol.md, section 14), written from the spec alone.

It sends the lines of a file (or standard input) into a running LANCompute pipeline whose
source is `pull`, as numbered batches to the broker's dispatch endpoint, service
`lancompute.intake`. Each batch is sent again, with the same number, until the broker
acknowledges it; the broker accepts each batch once. Lines are bytes: only the LF or CRLF
ending is removed.

    python3 Topologies/workers/feed_producer.py --broker tcp://127.0.0.1:5555 lines.txt

Exit status: 0 when every line was acknowledged and none dead-lettered; 1 otherwise (a
refusal, a dead-lettered line, or no acknowledgement for --timeout); 2 for bad arguments.
"""

import argparse
import os
import struct
import sys
import time

import zmq

CLIENT = b"MDPC01"
SERVICE = b"lancompute.intake"
MAX_WINDOW = 256


def log(message):
    sys.stderr.write(f"feed_producer: {message}\n")
    sys.stderr.flush()


def read_batches(stream, lines_per_batch, max_bytes=1 << 20):
    """Yields lists of lines (bytes), LF or CRLF endings removed."""
    batch, size = [], 0
    for line in stream:
        if line.endswith(b"\n"):
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
        batch.append(line)
        size += len(line)
        if len(batch) >= lines_per_batch or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class Producer:
    def __init__(self, endpoint, window, resend_after, timeout):
        self.endpoint = endpoint
        self.window = window
        self.resend_after = resend_after
        self.timeout = timeout
        self.producer = os.urandom(16)
        self.context = zmq.Context()
        self.socket = None
        self.outstanding = {}  # sequence -> [frames, line count, first line, due time]
        self.acknowledged = 0
        self.dead_lettered = []
        self.backoff = 0.05
        self.answered = False
        self.connect()

    def connect(self):
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(self.endpoint)
        self.last_heard = time.monotonic()
        for entry in self.outstanding.values():
            entry[3] = 0.0

    def summary(self, lines_read):
        return f"{self.acknowledged} of the {lines_read} lines read were acknowledged"

    def handle(self, frames, lines_read):
        # ["", "MDPC01", "lancompute.intake", "ack", ack] or [..., "error", reason, (ref)]
        if len(frames) < 4 or frames[0] != b"" or frames[1] != CLIENT or frames[2] != SERVICE:
            return
        self.last_heard = time.monotonic()
        self.answered = True
        kind, body = frames[3], frames[4:]
        if kind == b"ack" and len(body) == 1 and len(body[0]) >= 34 and body[0][0] == 1:
            ack = body[0]
            producer, (sequence,) = ack[1:17], struct.unpack(">Q", ack[17:25])
            dead_count = struct.unpack(">I", ack[30:34])[0]
            dead = struct.unpack(f">{dead_count}I", ack[34:34 + 4 * dead_count])
            entry = self.outstanding.pop(sequence, None) if producer == self.producer else None
            self.last_ack = time.monotonic()
            self.backoff = 0.05
            if entry is not None:
                self.acknowledged += entry[1]
                self.dead_lettered += [entry[2] + index for index in dead]
            return
        if kind == b"error" and body:
            reason = body[0].decode("utf-8", "replace")
            sequence = struct.unpack(">Q", body[1][16:24])[0] if len(body) > 1 and len(body[1]) == 24 else None
            if reason.startswith("LC2032:") and sequence in self.outstanding:
                # Busy: the same batch again after a pause that grows while refusals go on.
                self.outstanding[sequence][3] = time.monotonic() + self.backoff
                self.backoff = min(self.backoff * 2, 1.0)
                self.last_ack = time.monotonic()
                return
            log(f"the broker refused a batch: {reason}; {self.summary(lines_read)}")
            sys.exit(1)

    def run(self, batches):
        sequence, lines_read = 0, 0
        exhausted = False
        started = self.last_ack = time.monotonic()
        while True:
            now = time.monotonic()
            while not exhausted and len(self.outstanding) < self.window:
                batch = next(batches, None)
                if batch is None:
                    exhausted = True
                    break
                sequence += 1
                frames = [b"", CLIENT, SERVICE, self.producer, struct.pack(">Q", sequence)] + batch
                self.outstanding[sequence] = [frames, len(batch), lines_read + 1, 0.0]
                lines_read += len(batch)
            if exhausted and not self.outstanding:
                break
            for number in sorted(self.outstanding):
                entry = self.outstanding[number]
                if entry[3] <= now:
                    try:
                        self.socket.send_multipart(entry[0], flags=zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    entry[3] = now + self.resend_after
            poller = zmq.Poller()
            poller.register(self.socket, zmq.POLLIN)
            if poller.poll(50):
                while True:
                    try:
                        frames = self.socket.recv_multipart(flags=zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.handle(frames, lines_read)
            now = time.monotonic()
            if not self.answered and now - started > self.timeout:
                log(f"nothing answered at {self.endpoint} within {self.timeout} s; is it a broker's dispatch endpoint?")
                sys.exit(1)
            if self.answered and now - self.last_ack > self.timeout:
                log(f"no acknowledgement for {self.timeout} s; {self.summary(lines_read)}")
                sys.exit(1)
            if self.outstanding and now - self.last_heard > 2 * self.resend_after:
                # Silence while batches wait: perhaps a half-open connection. Start a new one.
                self.connect()
        self.socket.close(linger=0)
        self.context.term()
        if self.dead_lettered:
            log(f"all {lines_read} lines acknowledged, but {len(self.dead_lettered)} dead-lettered (lines {self.dead_lettered[:10]})")
            return 1
        log(f"fed {lines_read} lines; the broker acknowledged all of them")
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", required=True, help="the broker's dispatch endpoint, e.g. tcp://head:5555")
    parser.add_argument("file", nargs="?", help="a file of lines (default: standard input)")
    parser.add_argument("--batch", type=int, default=256, help="most lines in one batch")
    parser.add_argument("--window", type=int, default=16, help=f"batches unacknowledged at once (1..{MAX_WINDOW})")
    parser.add_argument("--resend-after", type=float, default=2.0, help="seconds before an unacknowledged batch is sent again")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds without an acknowledgement before giving up")
    args = parser.parse_args()
    if not 1 <= args.window <= MAX_WINDOW or args.batch < 1:
        parser.error(f"--window must be 1..{MAX_WINDOW} and --batch at least 1")
    stream = open(args.file, "rb") if args.file else sys.stdin.buffer
    with stream:
        producer = Producer(args.broker, args.window, args.resend_after, args.timeout)
        return producer.run(read_batches(stream, args.batch))


if __name__ == "__main__":
    sys.exit(main())
