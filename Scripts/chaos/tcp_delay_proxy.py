#!/usr/bin/env python3
"""A TCP proxy that adds a fixed delay each way, as a distant link does, without limiting throughput.

It listens on 127.0.0.1 (a free port unless --port is given; "listening PORT" is printed on
standard output once it accepts), forwards every connection to TARGET (HOST:PORT), and holds every
chunk it reads for DELAY milliseconds before writing it on, in order, in each direction. Reading
never waits for writing: chunks in flight queue in the proxy, so what passes per second is bounded
by the machine, not by the delay (a window of chunks travels at once, as on a long fat pipe).
The round trip through it is twice the delay. It runs until killed (SIGTERM or SIGINT).

    python3 Scripts/chaos/tcp_delay_proxy.py TARGET --delay-ms 50 [--port N]
"""

import argparse
import asyncio
import collections
import signal
import socket


async def pump(reader, writer, delay):
    """Copies reader to writer, each chunk leaving `delay` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue = collections.deque()
    ready = asyncio.Event()
    done = False

    async def read():
        nonlocal done
        try:
            while True:
                data = await reader.read(262144)
                if not data:
                    break
                queue.append((loop.time() + delay, data))
                ready.set()
        except (ConnectionError, OSError):
            pass
        done = True
        ready.set()

    async def write():
        try:
            while True:
                if not queue:
                    if done:
                        break
                    ready.clear()
                    await ready.wait()
                    continue
                due, data = queue[0]
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                queue.popleft()
                writer.write(data)
                # Only the writer waits for the peer to drain; the reader goes on reading.
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass

    await asyncio.gather(read(), write())


async def serve(target_host, target_port, delay, port):
    async def handle(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        for writer in (client_writer, upstream_writer):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(
                pump(client_reader, upstream_writer, delay),
                pump(upstream_reader, client_writer, delay),
            )
        except asyncio.CancelledError:
            pass  # the proxy is stopping

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    async with server:
        await stop.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT to forward to")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="delay added each way (default 50)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    arguments = parser.parse_args()
    host, port = arguments.target.rsplit(":", 1)
    asyncio.run(serve(host, int(port), arguments.delay_ms / 1000.0, arguments.port))


if __name__ == "__main__":
    main()
