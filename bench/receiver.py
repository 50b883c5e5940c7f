"""A local webhook receiver for the activation and trigger benchmarks, in its own process so it does not
share the benchmark's GIL.

Minimal HTTP/1.1 keep-alive server on asyncio streams (the stdlib server costs more CPU than the client
under test). Every POST is read in full, its JSON decoded (as a real receiver must) and answered
`200 {}`; it counts requests and rows (the length of the body's `operations`, else 1) and, with
`keep=True`, keeps each request's arrival time (time.time()) and decoded body. `GET /stats` answers those
figures as JSON; `POST /reset` empties them.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import re
import time
import urllib.request

import msgspec

_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def _serve(port_out, keep: bool) -> None:
    stats = {"requests": 0, "rows": 0, "kept": []}
    decode = msgspec.json.decode

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                match = _LENGTH.search(head)
                body = await reader.readexactly(int(match.group(1))) if match else b""
                arrived = time.time()
                if head.startswith(b"GET /stats"):
                    payload = json.dumps(stats).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                        + str(len(payload)).encode()
                        + b"\r\n\r\n"
                        + payload
                    )
                elif head.startswith(b"POST /reset"):
                    stats.update(requests=0, rows=0, kept=[])
                    writer.write(_OK)
                else:
                    document = decode(body) if body else None
                    operations = document.get("operations") if isinstance(document, dict) else None
                    stats["requests"] += 1
                    stats["rows"] += len(operations) if isinstance(operations, list) else 1
                    if keep:
                        stats["kept"].append([arrived, document])
                    writer.write(_OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_out.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Receiver:
    """`with Receiver() as r:` a server on 127.0.0.1:r.port in a child process."""

    def __init__(self, keep: bool = False):
        self.keep = keep

    def __enter__(self) -> Receiver:
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        self.process = context.Process(target=_serve, args=(ports, self.keep), daemon=True)
        self.process.start()
        self.port = ports.get(timeout=30)
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=60) as answer:
            return json.loads(answer.read())

    def reset(self) -> None:
        urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/reset", data=b"", method="POST"), timeout=10
        )

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join(10)
