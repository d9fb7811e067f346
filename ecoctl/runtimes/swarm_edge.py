"""ecoctl's swarm edge: publishes one service's port on the node and spreads connections over its replicas.

Runs inside the stack (standard library only, mounted as a Docker config). It stands in for swarm's
ingress routing mesh, which needs IPVS in the kernel: each new TCP connection goes to the next
address that `NAME` resolves to (with `endpoint_mode: dnsrr`, one per running and healthy task);
an address that refuses (a replica shutting down) is skipped, so rolling updates drop no request.

    EDGE_LISTEN=8000 EDGE_TARGET=portfolio:8000 python swarm_edge.py
"""

import asyncio
import itertools
import os
import socket
import sys

LISTEN = int(os.environ["EDGE_LISTEN"])
HOST, PORT = os.environ["EDGE_TARGET"].rsplit(":", 1)
turn = itertools.count()


async def backends() -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(HOST, int(PORT), family=socket.AF_INET,
                                                             type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    addresses = sorted({info[4][0] for info in infos})
    if not addresses:
        return []
    start = next(turn) % len(addresses)
    return addresses[start:] + addresses[:start]


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        pass


async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
    backend = None
    for _ in range(10):  # no replica answers yet (e.g. all restarting): retry for a few seconds
        for address in await backends():
            try:
                backend = await asyncio.wait_for(asyncio.open_connection(address, int(PORT)), 2.0)
                break
            except (OSError, asyncio.TimeoutError):
                continue
        if backend is not None:
            break
        await asyncio.sleep(0.5)
    if backend is None:
        client_writer.close()
        return
    backend_reader, backend_writer = backend
    await asyncio.gather(pipe(client_reader, backend_writer), pipe(backend_reader, client_writer))
    for writer in (client_writer, backend_writer):
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "0.0.0.0", LISTEN, reuse_address=True)
    print(f"edge: 0.0.0.0:{LISTEN} -> {HOST}:{PORT} (each replica in turn)", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
