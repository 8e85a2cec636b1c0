#!/usr/bin/env python3
"""A plain MDP/0.1 worker (ZeroMQ RFC 7): serves one stage of a LANCompute pipeline.

It speaks only the public protocol, with none of the LANCompute extensions, to show that a
stage can be served from any language with any ZeroMQ binding. The broker treats it as a
worker with credit 1: one REQUEST at a time, the item's payload as the only body frame,
and each body frame of the REPLY becomes one output item.

    python3 Topologies/workers/mdp_worker.py --broker tcp://127.0.0.1:5555 --service reverse

Exit status: 0 after SIGTERM or SIGINT, 2 for bad arguments.
"""

import argparse
import signal
import sys
import time

import zmq

WORKER = b"MDPW01"
READY = b"\x01"
REQUEST = b"\x02"
REPLY = b"\x03"
HEARTBEAT = b"\x04"
DISCONNECT = b"\x05"

TRANSFORMS = {
    "reverse": lambda body: body[::-1],
    "upper": lambda body: body.decode("utf-8", "replace").upper().encode("utf-8"),
    "echo": lambda body: body,
}


def log(message):
    sys.stderr.write(f"mdp_worker: {message}\n")
    sys.stderr.flush()


class MajordomoWorker:
    """One DEALER registered for one service; replaced by a fresh one whenever the broker goes quiet."""

    def __init__(self, context, broker, service, transform, interval, liveness, reconnect, delay, verbose):
        self.context = context
        self.broker = broker
        self.service = service.encode("utf-8")
        self.transform = transform
        self.interval = interval
        self.liveness = liveness
        self.reconnect = reconnect
        self.delay = delay
        self.verbose = verbose
        self.stopping = False
        self.socket = None
        self.last_heard = 0.0
        self.last_sent = 0.0
        self.served = 0

    def send(self, command, *frames):
        # A DEALER talks to the broker's ROUTER, so every message starts with the empty delimiter.
        self.socket.send_multipart([b"", WORKER, command, *frames])
        self.last_sent = time.monotonic()

    def connect(self):
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket = self.context.socket(zmq.DEALER)
        # Nothing left unsent is worth keeping: the broker redelivers whatever we did not answer.
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(self.broker)
        self.send(READY, self.service)
        self.last_heard = time.monotonic()
        if self.verbose:
            log(f"registered for service {self.service.decode()} at {self.broker}")

    def wait_before_reconnecting(self):
        deadline = time.monotonic() + self.reconnect
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.05)

    def handle(self, frames):
        """Handles one message from the broker; returns False when the worker must register again."""
        if len(frames) < 3 or frames[0] != b"" or frames[1] != WORKER:
            log("dropped a message that is not MDP/0.1 worker protocol")
            return True
        command = frames[2]
        if command == REQUEST:
            if len(frames) < 5 or frames[4] != b"":
                log("dropped a malformed REQUEST")
                return True
            client = frames[3]
            body = frames[5:]
            if self.delay > 0:
                time.sleep(self.delay)
            outputs = [self.transform(frame) for frame in body]
            self.send(REPLY, client, b"", *outputs)
            self.served += 1
        elif command == HEARTBEAT:
            pass
        elif command == DISCONNECT:
            log("the broker sent DISCONNECT; registering again")
            return False
        else:
            log(f"dropped an unknown command {command!r}")
        return True

    def run(self):
        self.connect()
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self.stopping:
            # Short polls so a signal is noticed quickly; heartbeats keep their own clock.
            timeout = max(0.0, min(self.interval - (time.monotonic() - self.last_sent), 0.1))
            events = dict(poller.poll(timeout * 1000))
            if self.socket in events:
                register_again = False
                while not self.stopping:
                    try:
                        frames = self.socket.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    # Any message from the broker proves it is alive.
                    self.last_heard = time.monotonic()
                    if not self.handle(frames):
                        register_again = True
                        break
                if register_again:
                    poller.unregister(self.socket)
                    self.wait_before_reconnecting()
                    if self.stopping:
                        break
                    self.connect()
                    poller.register(self.socket, zmq.POLLIN)
                    continue
            now = time.monotonic()
            if now - self.last_heard > self.interval * self.liveness:
                log(f"no word from the broker for {self.interval * self.liveness:.3f} s; reconnecting")
                poller.unregister(self.socket)
                self.wait_before_reconnecting()
                if self.stopping:
                    break
                self.connect()
                poller.register(self.socket, zmq.POLLIN)
                continue
            if now - self.last_sent >= self.interval:
                self.send(HEARTBEAT)
        # Tell the broker we are going so it can redeliver at once instead of waiting for expiry.
        try:
            self.send(DISCONNECT)
        except zmq.ZMQError:
            pass
        self.socket.close(linger=0)
        if self.verbose:
            log(f"stopped after {self.served} requests")


def main():
    parser = argparse.ArgumentParser(description="A plain MDP/0.1 (ZeroMQ RFC 7) worker for one LANCompute stage.")
    parser.add_argument("--broker", default="tcp://127.0.0.1:5555", help="the broker's dispatch endpoint")
    parser.add_argument("--service", required=True, help="the service (stage) name to register for")
    parser.add_argument("--transform", choices=sorted(TRANSFORMS), default="reverse",
                        help="what to do with each body frame (default: reverse its bytes)")
    parser.add_argument("--heartbeat-interval", type=int, default=250, metavar="MS",
                        help="milliseconds between heartbeats (default 250)")
    parser.add_argument("--heartbeat-liveness", type=int, default=4, metavar="N",
                        help="heartbeats missed before the broker counts as gone (default 4)")
    parser.add_argument("--reconnect", type=int, default=1000, metavar="MS",
                        help="milliseconds to wait before registering again (default 1000)")
    parser.add_argument("--delay", type=int, default=0, metavar="MS",
                        help="milliseconds to wait before answering each request (for demos and tests)")
    parser.add_argument("--verbose", action="store_true", help="log registrations and the final count")
    arguments = parser.parse_args()
    if arguments.heartbeat_interval < 1 or arguments.heartbeat_liveness < 1:
        parser.error("--heartbeat-interval and --heartbeat-liveness must be at least 1")

    context = zmq.Context()
    worker = MajordomoWorker(
        context, arguments.broker, arguments.service, TRANSFORMS[arguments.transform],
        arguments.heartbeat_interval / 1000, arguments.heartbeat_liveness,
        arguments.reconnect / 1000, arguments.delay / 1000, arguments.verbose)

    def stop(signum, frame):
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A parent may have started us with these blocked (the mask is inherited); we want them.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        worker.run()
    finally:
        context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
