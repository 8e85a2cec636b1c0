#!/usr/bin/env python3
"""An independent ZeroMQ peer (pyzmq) for the binding's interop tests.

Modes:
  router-echo                 bind a ROUTER on tcp://127.0.0.1 (random port), print the endpoint,
                              echo every multipart message back to its sender until one whose
                              body is [b"quit"] arrives (answered with [b"bye"]).
  curve-router-echo           the same as a CURVE server with a new key pair; prints the endpoint,
                              then the server's public key in Z85 on a second line.
  push ENDPOINT COUNT         connect a PUSH and send COUNT multipart messages (see message()).
  dealer-check ENDPOINT COUNT connect a DEALER, send COUNT messages, expect each echoed back
                              unchanged, then send [b"done"]; exit 1 on any mismatch.
Every mode gives up after 30 seconds, so a broken test never leaves this process behind.
"""

import signal
import sys

import zmq


def message(index):
    """Message number `index`: empty frames, binary bytes (every value, NUL included) and text."""
    return [b"", str(index).encode(), bytes(range(256)), b"", b"\x00\xff\x00", b"x" * (index * 1000)]


def main():
    signal.alarm(30)
    mode = sys.argv[1]
    context = zmq.Context()
    try:
        if mode in ("router-echo", "curve-router-echo"):
            router = context.socket(zmq.ROUTER)
            router.linger = 1000
            router.rcvtimeo = 20000
            public_key = None
            if mode == "curve-router-echo":
                public_key, secret_key = zmq.curve_keypair()
                router.curve_server = True
                router.curve_secretkey = secret_key
            port = router.bind_to_random_port("tcp://127.0.0.1")
            print(f"tcp://127.0.0.1:{port}", flush=True)
            if public_key is not None:
                print(public_key.decode("ascii"), flush=True)
            while True:
                frames = router.recv_multipart()
                if frames[1:] == [b"quit"]:
                    router.send_multipart([frames[0], b"bye"])
                    break
                router.send_multipart(frames)
            router.close()
        elif mode == "push":
            endpoint, count = sys.argv[2], int(sys.argv[3])
            push = context.socket(zmq.PUSH)
            push.linger = 5000
            push.connect(endpoint)
            for index in range(count):
                push.send_multipart(message(index))
            push.close()
        elif mode == "dealer-check":
            endpoint, count = sys.argv[2], int(sys.argv[3])
            dealer = context.socket(zmq.DEALER)
            dealer.linger = 1000
            dealer.rcvtimeo = 20000
            dealer.connect(endpoint)
            for index in range(count):
                dealer.send_multipart(message(index))
                echoed = dealer.recv_multipart()
                if echoed != message(index):
                    print(f"message {index} came back changed: {echoed!r}", file=sys.stderr)
                    return 1
            dealer.send_multipart([b"done"])
            dealer.close()
            print("ok", flush=True)
        else:
            print(f"unknown mode {mode}", file=sys.stderr)
            return 2
    finally:
        context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
