"""A lean HTTP/1.1 keep-alive load generator on asyncio streams.

The server and the load share two cores, so the client must cost as little as
possible: requests are pre-encoded bytes and responses are read by Content-Length
and parsed only when the caller asks for the body.
"""
import asyncio
import time


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes) -> tuple:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload

    def close(self) -> None:
        if self.writer:
            self.writer.close()


async def run(url: str, requests: list, clients: int, on_response=None) -> tuple:
    """Send (method, path, body) requests over ``clients`` connections.
    Returns (seconds, latencies in ms, responses in request order)."""
    host, port = url.split("//")[1].split(":")
    pending = list(range(len(requests)))[::-1]
    responses = [None] * len(requests)
    latencies = []

    async def worker():
        conn = Connection(host, int(port))
        await conn.open()
        try:
            while pending:
                i = pending.pop()
                method, path, body = requests[i]
                t = time.perf_counter()
                status, payload = await conn.request(method, path, body)
                latencies.append((time.perf_counter() - t) * 1000)
                if status != 200:
                    raise RuntimeError(f"{method} {path}: {status} {payload[:300]!r}")
                responses[i] = payload
                if on_response:
                    on_response(i)
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - t0, latencies, responses
