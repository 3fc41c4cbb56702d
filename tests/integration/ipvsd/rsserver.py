"""A real server for the load-balancer tests: answers every TCP connection with ``NAME PEER-ADDRESS LOCAL-ADDRESS``.

``python rsserver.py NAME PORT``; the peer address lets a test see whether the load balancer did FNAT.
A request starting with ``HOLD`` gets the same answer and the connection stays open (up to 60 s) until
the client closes it: long-lived connections for the least-connection tests.
"""

from __future__ import annotations

import asyncio
import sys


async def main(name: str, port: int) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            req = await asyncio.wait_for(reader.read(1024), timeout=2.0)
            peer = writer.get_extra_info("peername")[0]
            local = writer.get_extra_info("sockname")[0]
            writer.write(f"{name} {peer} {local}\n".encode())
            await writer.drain()
            if req.startswith(b"HOLD"):  # a long-lived connection: open until the client closes it
                await asyncio.wait_for(reader.read(1024), timeout=60.0)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, None, port, backlog=512)  # IPv4 and IPv6
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
