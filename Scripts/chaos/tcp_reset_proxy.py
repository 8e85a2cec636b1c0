#!/usr/bin/env python3
"""A TCP proxy that resets the connection once, mid-stream.

It listens on 127.0.0.1 (a free port, printed on standard output as "listening PORT"), forwards
every connection to TARGET (a Unix socket path, as behind an ipc:// endpoint, or HOST:PORT), and
once RESET_AFTER bytes have gone from clients to the target it closes that connection with a TCP
RST on both sides (SO_LINGER 0) and prints "reset". Later connections are forwarded untouched.
It runs until killed.

    python3 Scripts/chaos/tcp_reset_proxy.py TARGET RESET_AFTER
"""

import socket
import struct
import sys
import threading

lock = threading.Lock()
state = {"forwarded": 0, "reset": False}


def reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def connect(target):
    if ":" in target and not target.startswith("/"):
        host, port = target.rsplit(":", 1)
        return socket.create_connection((host, int(port)))
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.connect(target)
    return upstream


def pump(source, destination, counted, reset_after, pair):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            if counted:
                with lock:
                    state["forwarded"] += len(data)
                    cut = not state["reset"] and state["forwarded"] >= reset_after
                    if cut:
                        state["reset"] = True
                if cut:
                    print("reset", flush=True)
                    for sock in pair:
                        reset(sock)
                    return
            destination.sendall(data)
    except OSError:
        pass
    for sock in pair:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    target, reset_after = sys.argv[1], int(sys.argv[2])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(f"listening {listener.getsockname()[1]}", flush=True)
    while True:
        client, _ = listener.accept()
        try:
            upstream = connect(target)
        except OSError:
            client.close()
            continue
        pair = (client, upstream)
        threading.Thread(target=pump, args=(client, upstream, True, reset_after, pair), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, False, reset_after, pair), daemon=True).start()


if __name__ == "__main__":
    main()
