"""The API's serving ceiling: stxbf's request pattern, with no parsing and no storing.

Run as its own process (`python benchmarks/rawload.py URL --start S --end E --seconds 20`), it
pages time windows of ~4,000 transactions exactly as stxbf's engine does (a sizing page, then all
of its offsets), over plain keep-alive HTTP/1.1 on raw asyncio sockets, asking for gzip as stxbf
does (so the server does the same work for both). It reads each response whole and counts it; only
a window's sizing page is looked into, for its `"total"`. What it achieves is what the server can
serve; stxbf's end-to-end rate divided by it is the client's cost. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import time
import zlib
from urllib.parse import urlsplit

TOTAL = re.compile(rb'"total"\s*:\s*(\d+)')
PAGE = 50


class Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.encoded = False

    async def get(self, target: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {target} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            "accept: application/json\r\naccept-encoding: gzip, deflate\r\n"
            "user-agent: stxbf-bench-raw\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(parts)
        else:
            body = await self.reader.read()
            self.writer.close()
            self.writer = None
        if headers.get("connection", "").lower() == "close" and self.writer is not None:
            self.writer.close()
            self.writer = None
        if headers.get("content-encoding", "").lower() in ("gzip", "deflate"):
            self.encoded = True
        return status, body

    def reset(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def page_total(body: bytes) -> int | None:
    """The envelope's `total`: found near either end of the body, decompressed if need be."""
    if body[:2] == b"\x1f\x8b" or (body[:1] == b"\x78"):
        body = zlib.decompress(body, 47 if body[:2] == b"\x1f\x8b" else 15)
    for part in (body[:400], body[-400:]):
        match = TOTAL.search(part)
        if match:
            return int(match.group(1))
    try:
        total = json.loads(body).get("total")
    except (ValueError, AttributeError):
        return None
    return total if isinstance(total, int) else None


async def main(args: argparse.Namespace) -> dict[str, object]:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    base = parts.path.rstrip("/") + "/extended/v1/tx"

    def target(start: int, end: int, offset: int) -> str:
        return (
            f"{base}?limit={PAGE}&offset={offset}&order=asc&sort_by=block_height"
            f"&start_time={start}&end_time={end}"
        )

    if args.span:
        span = max(1, int(args.span))
    else:  # ~4,000 transactions a window, as stxbf sizes them, but not aligned with stxbf's
        sizing = Conn(host, port)
        status, body = await sizing.get(target(args.start, args.end, 0))
        sizing.reset()
        total = (page_total(body) or 0) if status == 200 else 0
        seconds = args.end - args.start + 1
        span = max(1, int(0.97 * 4000 * seconds / total)) if total else seconds
    next_end = args.end
    # (start, end, offset, the window's total once its sizing page is back)
    jobs: collections.deque[tuple[int, int, int, int]] = collections.deque()
    counts = {"requests": 0, "pages": 0, "bytes": 0, "non_200": 0, "errors": 0, "results_est": 0}
    deadline = time.monotonic() + args.seconds
    started = time.monotonic()
    encoded = False

    def next_job() -> tuple[int, int, int, int] | None:
        nonlocal next_end
        if jobs:
            return jobs.popleft()
        if next_end < args.start:
            return None
        end = next_end
        start = max(args.start, end - span + 1)
        next_end = start - 1
        return (start, end, 0, -1)

    sizing_in_flight = 0

    async def worker() -> None:
        nonlocal sizing_in_flight, encoded
        conn = Conn(host, port)
        while time.monotonic() < deadline and counts["errors"] < 100:
            job = next_job()
            if job is None:
                if not sizing_in_flight:
                    return
                await asyncio.sleep(0.001)  # a sizing page may still bring offsets
                continue
            start, end, offset, total = job
            sizing_in_flight += offset == 0
            try:
                status, body = await conn.get(target(start, end, offset))
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                conn.reset()  # the server closed a keep-alive connection: reconnect, ask again
                counts["errors"] += 1
                jobs.append(job)
                continue
            finally:
                sizing_in_flight -= offset == 0
            encoded = encoded or conn.encoded
            counts["requests"] += 1
            counts["bytes"] += len(body)
            if status != 200:
                counts["non_200"] += 1
                jobs.append(job)
                continue
            counts["pages"] += 1
            if offset == 0:
                total = page_total(body) or 0
                jobs.extend((start, end, o, total) for o in range(PAGE, total, PAGE))
            counts["results_est"] += max(0, min(PAGE, total - offset))

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.monotonic() - started
    return {
        **counts,
        "seconds": round(elapsed, 3),
        "pages_per_s": round(counts["pages"] / elapsed, 1),
        "tx_per_s": round(counts["results_est"] / elapsed, 1),
        "concurrency": args.concurrency,
        "span_s": span,
        "gzip": encoded,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--start", type=int, required=True, help="burn_block_time, inclusive")
    parser.add_argument("--end", type=int, required=True, help="burn_block_time, inclusive")
    parser.add_argument("--span", type=float, default=0, help="window seconds (0: ~4,000 tx)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
