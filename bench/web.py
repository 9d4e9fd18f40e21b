"""One-click unsubscribe under load: the real app under uvicorn, 100,000 subscribers.

Starts uvicorn in a subprocess on 127.0.0.1 with ``digest.web.app:create_app`` on a fresh
SQLite file (or ``--database-url``) holding the given number of active subscribers, inserted
in bulk. Then ``--concurrency`` keep-alive connections POST the RFC 8058 body
``List-Unsubscribe=One-Click`` to ``/unsubscribe/{token}`` of distinct subscribers, bounded by
``--requests`` and ``--duration``, and it prints requests/s, latency percentiles and the CPU
time per request of the server and of the load client. At the end it checks that every 200 left
exactly one unsubscribed subscriber and one audit entry.

The load client speaks HTTP/1.1 on asyncio streams itself: it costs a few tens of microseconds
per request, so the figures are the server's. (httpx's connection pool costs milliseconds per
request at 32 connections and, on a small machine, takes the CPU the server would use.)

    python bench/web.py [--subscribers 100000] [--requests 5000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlmodel import col

import digest.models
from digest.config import Settings
from digest.db import create_engine, utcnow
from subscribers.models import AuditEntry, Cause, Status, Subscriber
from subscribers.tokens import Purpose, signer_from_settings

SECRET = secrets.token_urlsafe(48)  # a key the web app accepts outside development
INSERT_CHUNK = 10_000
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
REQUEST_TIMEOUT = 30.0


def seed(engine: sa.Engine, count: int) -> None:
    now = utcnow()
    table = Subscriber.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        for start in range(0, count, INSERT_CHUNK):
            rows = [
                {
                    "email": f"reader{number}@example.com",
                    "email_key": f"reader{number}@example.com",
                    "name": "",
                    "timezone": "UTC",
                    "categories": [],
                    "status": Status.ACTIVE.value,
                    "paused": False,
                    "source": "bench",
                    "created_at": now,
                    "updated_at": now,
                    "confirmed_at": now,
                }
                for number in range(start, min(start + INSERT_CHUNK, count))
            ]
            connection.execute(table.insert(), rows)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(settings: Settings, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "DIGEST_ENVIRONMENT": "test",
        "DIGEST_DATABASE_URL": settings.database_url,
        "DIGEST_SECRET_KEY": SECRET,
        "DIGEST_BASE_URL": settings.base_url,
        "DIGEST_EMAIL_BACKEND": "memory",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "digest.web.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    # The working directory is empty so that no stray .env changes the settings.
    return subprocess.Popen(command, env=env, cwd=workdir)


def wait_until_healthy(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not become healthy within 30 s")


async def load(
    urls: list[str], concurrency: int, duration: float
) -> tuple[list[float], dict[str, int], float]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}  # status code, or the name of the client error
    queue = iter(urls)
    started = time.perf_counter()
    deadline = started + duration

    async def worker() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for url in queue:
            if time.perf_counter() > deadline:
                break
            target = httpx.URL(url)
            begin = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    if connection is None:
                        connection = await asyncio.open_connection(target.host, target.port)
                    status, keep_alive = await post(*connection, target)
                outcome = str(status)
            except (OSError, EOFError, ValueError, TimeoutError) as exc:
                outcome, keep_alive = type(exc).__name__, False
            latencies.append(time.perf_counter() - begin)
            statuses[outcome] = statuses.get(outcome, 0) + 1
            if not keep_alive and connection is not None:
                connection[1].close()
                connection = None
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


async def post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: httpx.URL
) -> tuple[int, bool]:
    """POST the one-click body to ``target``; the status and whether the connection stays open."""
    writer.write(
        f"POST {target.raw_path.decode('ascii')} HTTP/1.1\r\n"
        f"Host: {target.host}:{target.port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(ONE_CLICK_BODY)}\r\n\r\n".encode("ascii")
        + ONE_CLICK_BODY
    )
    await writer.drain()
    # A connection closed early raises IncompleteReadError, an EOFError.
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    keep_alive = headers.get(b"connection") != b"close"
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailers
    else:
        await reader.read()  # the body ends with the connection
        keep_alive = False
    return status, keep_alive


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="stop after this many s")
    parser.add_argument("--database-url", help="an empty database (default: a new SQLite file)")
    args = parser.parse_args()
    if args.requests + args.warmup > args.subscribers:
        parser.error("--requests + --warmup must not exceed --subscribers")

    with tempfile.TemporaryDirectory(prefix="digest-bench-web-") as scratch:
        workdir = Path(scratch)
        port = free_port()
        settings = Settings(
            _env_file=None,
            environment="test",
            database_url=args.database_url or f"sqlite:///{workdir / 'bench.db'}",
            secret_key=SECRET,
            base_url=f"http://127.0.0.1:{port}",
        )
        engine = create_engine(settings.database_url)
        digest.models.metadata.create_all(engine)
        began = time.perf_counter()
        seed(engine, args.subscribers)
        seconds = time.perf_counter() - began
        print(f"seeded {args.subscribers:,} active subscribers in {seconds:.1f} s")

        signer = signer_from_settings(settings)
        picked = random.Random(8058).sample(
            range(1, args.subscribers + 1), args.requests + args.warmup
        )
        urls = [
            f"{settings.base_url}/unsubscribe/{signer.make(subscriber_id, Purpose.UNSUBSCRIBE)}"
            for subscriber_id in picked
        ]

        server = start_server(settings, port, workdir)
        try:
            wait_until_healthy(settings.base_url, server)
            _, warmup_statuses, _ = asyncio.run(
                load(urls[: args.warmup], args.concurrency, args.duration)
            )
            server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
            latencies, statuses, elapsed = asyncio.run(
                load(urls[args.warmup :], args.concurrency, args.duration)
            )
            server_cpu = cpu_seconds(server.pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
        finally:
            server.terminate()
            server.wait(timeout=30)

        done = len(latencies)
        print(
            f"one-click unsubscribe, {args.concurrency} connections, {done:,} requests "
            f"in {elapsed:.2f} s (after {args.warmup} warm-up requests)"
        )
        print(f"  throughput  {done / elapsed:,.0f} requests/s")
        print(
            f"  latency     p50 {percentile(latencies, 0.50) * 1000:.1f} ms"
            f"   p90 {percentile(latencies, 0.90) * 1000:.1f} ms"
            f"   p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
            f"   max {max(latencies) * 1000:.1f} ms"
            f"   mean {statistics.fmean(latencies) * 1000:.1f} ms"
        )
        print(f"  responses   {dict(sorted(statuses.items()))}")
        print(
            f"  CPU         server {server_cpu / done * 1000:.1f} ms/request, "
            f"load client {client_cpu / done * 1000:.1f} ms/request, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )

        with engine.connect() as connection:
            unsubscribed = connection.scalar(
                sa.select(sa.func.count()).where(col(Subscriber.status) == Status.UNSUBSCRIBED)
            )
            audited = connection.scalar(
                sa.select(sa.func.count()).where(col(AuditEntry.cause) == Cause.ONE_CLICK)
            )
        engine.dispose()
        print(f"  database    {unsubscribed:,} unsubscribed, {audited:,} one-click audit entries")
        check(statuses, warmup_statuses, unsubscribed or 0, audited or 0)


def check(
    statuses: dict[str, int], warmup: dict[str, int], unsubscribed: int, audited: int
) -> None:
    """Every 200 is exactly one change. A request that failed in transport (the client saw the
    connection drop) may or may not have reached the app; any other answer is a failure."""
    outcomes = Counter(statuses) + Counter(warmup)
    answered = outcomes["200"]
    dropped = sum(count for outcome, count in outcomes.items() if not outcome.isdigit())
    refused = {o: n for o, n in outcomes.items() if o.isdigit() and o != "200"}
    if refused or unsubscribed != audited or not answered <= unsubscribed <= answered + dropped:
        raise SystemExit(
            f"FAILED: {answered:,} answered 200, {dropped} dropped, other answers {refused}, "
            f"{unsubscribed:,} unsubscribed, {audited:,} audited"
        )


if __name__ == "__main__":
    main()
