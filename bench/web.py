"""The web app under load: the real app under uvicorn, 100,000 subscribers.

Starts uvicorn in a subprocess on 127.0.0.1 with ``digest.web.app:create_app`` on a fresh
SQLite file (or ``--database-url``) holding the given number of active subscribers, inserted
in bulk. Then ``--concurrency`` keep-alive connections POST, bounded by ``--requests`` and
``--duration``, and it prints requests/s, latency percentiles and the CPU time per request of
the server and of the load client. ``--scenario``:

- ``unsubscribe`` (default): the RFC 8058 body ``List-Unsubscribe=One-Click`` to
  ``/unsubscribe/{token}`` of distinct subscribers. At the end it checks that every 200 left
  exactly one unsubscribed subscriber and one audit entry.
- ``votes``: the vote button (``choice=ship|skip``) to ``/vote/{token}`` of random subscribers,
  tools and choices, while ``digest send`` delivers the W47 edition to every subscriber on the
  same database (memory backend, ``--send-rate`` messages/s). At the end it checks that every
  200 left one press and that each (subscriber, comparison, tool) pressed has one vote.
  ``--concurrency 8,32`` runs one load per value.
- ``clicks``: tracked links, ``GET /r/{token}`` of random subscribers and links of the W47
  edition, during the same kind of send. Every answer must be a 302, and every hit must be
  stored once the server has stopped (the redirect records off the request path).
- ``opens``: the open pixel (``DIGEST_TRACK_OPENS=on`` for the server and the send), ``GET``
  of random subscribers' pixels of the W47 edition during the same kind of send. Every answer
  must be a 200 with the GIF, and every fetch must be stored as an open.

The load client speaks HTTP/1.1 on asyncio streams itself: it costs a few tens of microseconds
per request, so the figures are the server's. (httpx's connection pool costs milliseconds per
request at 32 connections and, on a small machine, takes the CPU the server would use.)

    python bench/web.py [--subscribers 100000] [--requests 5000] [--concurrency 32]
    python bench/web.py --scenario votes --concurrency 8,32
    python bench/web.py --scenario clicks --concurrency 8,32
    python bench/web.py --scenario opens --concurrency 8,32
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
from collections.abc import Callable
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlmodel import col

from digest.clicks.models import ClickHit, EditionLink, OpenHit
from digest.config import Settings
from digest.content.importer import import_paths
from digest.db import create_engine, upgrade, utcnow
from digest.editions.models import Edition, EditionComparison
from digest.votes.models import Vote, VoteEvent
from subscribers.models import AuditEntry, Cause, Status, Subscriber
from subscribers.tokens import ClickRef, Purpose, VoteRef, signer_from_settings

SECRET = secrets.token_urlsafe(48)  # a key the web app accepts outside development
INSERT_CHUNK = 10_000
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
REQUEST_TIMEOUT = 30.0
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "comparisons"
VOTE_WEEK = "2026-W47"


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


def digest_env(settings: Settings, extra: dict[str, str], **more: str) -> dict[str, str]:
    """The environment of a digest process on the bench database (memory backend)."""
    return (
        dict(os.environ)
        | extra
        | {
            "DIGEST_ENVIRONMENT": "test",
            "DIGEST_DATABASE_URL": settings.database_url,
            "DIGEST_SECRET_KEY": SECRET,
            "DIGEST_BASE_URL": settings.base_url,
            "DIGEST_EMAIL_BACKEND": "memory",
        }
        | more
    )


def start_server(
    settings: Settings, port: int, workdir: Path, extra: dict[str, str]
) -> subprocess.Popen[bytes]:
    # One load client stands for many readers: no per-client limit on the vote button.
    env = digest_env(settings, extra, DIGEST_VOTE_RATE_PER_MINUTE="1000000000")
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
    requests: list[tuple[str, bytes | None]], concurrency: int, duration: float
) -> tuple[list[float], dict[str, int], float]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}  # status code, or the name of the client error
    queue = iter(requests)
    started = time.perf_counter()
    deadline = started + duration

    async def worker() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for url, body in queue:
            if time.perf_counter() > deadline:
                break
            target = httpx.URL(url)
            begin = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    if connection is None:
                        connection = await asyncio.open_connection(target.host, target.port)
                    status, keep_alive = await post(*connection, target, body)
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
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    target: httpx.URL,
    body: bytes | None,
) -> tuple[int, bool]:
    """POST the form ``body`` to ``target`` (GET it when ``body`` is None); the status and
    whether the connection stays open."""
    if body is None:
        writer.write(
            f"GET {target.raw_path.decode('ascii')} HTTP/1.1\r\n"
            f"Host: {target.host}:{target.port}\r\n"
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Firefox/133.0\r\n"
            "\r\n".encode("ascii")
        )
    else:
        writer.write(
            f"POST {target.raw_path.decode('ascii')} HTTP/1.1\r\n"
            f"Host: {target.host}:{target.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode("ascii")
            + body
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
    parser.add_argument(
        "--scenario", choices=("unsubscribe", "votes", "clicks", "opens"), default="unsubscribe"
    )
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", default="32", help="connections; several: 8,32")
    parser.add_argument("--duration", type=float, default=60.0, help="stop after this many s")
    parser.add_argument("--send-rate", type=float, default=500.0, help="votes: messages/s")
    parser.add_argument("--database-url", help="an empty database (default: a new SQLite file)")
    args = parser.parse_args()
    concurrencies = [int(value) for value in args.concurrency.split(",")]
    if (
        args.scenario == "unsubscribe"
        and (args.requests + args.warmup) * len(concurrencies) > args.subscribers
    ):
        parser.error("--requests + --warmup (per concurrency) must not exceed --subscribers")

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
        upgrade(settings.database_url)  # the schema the commands check for
        engine = create_engine(settings.database_url)
        began = time.perf_counter()
        seed(engine, args.subscribers)
        seconds = time.perf_counter() - began
        print(f"seeded {args.subscribers:,} active subscribers in {seconds:.1f} s")

        sender: subprocess.Popen[bytes] | None = None
        make: Callable[[int, int], list[tuple[str, bytes | None]]]
        extra = {"DIGEST_TRACK_OPENS": "on"} if args.scenario == "opens" else {}
        if args.scenario in ("votes", "clicks", "opens"):
            assert import_paths(engine, [str(EXAMPLES)]).ok
            sender = start_send(settings, workdir, args.send_rate, extra)
            if args.scenario == "votes":
                make = vote_requests(engine, settings, args.subscribers, sender)
            else:
                pixel = args.scenario == "opens"
                make = click_requests(engine, settings, args.subscribers, sender, pixel=pixel)
        else:
            make = unsubscribe_requests(settings, args.subscribers)

        server = start_server(settings, port, workdir, extra)
        outcomes: list[tuple[dict[str, int], dict[str, int]]] = []
        try:
            wait_until_healthy(settings.base_url, server)
            for round_number, concurrency in enumerate(concurrencies):
                requests = make(round_number, args.requests + args.warmup)
                _, warmup_statuses, _ = asyncio.run(
                    load(requests[: args.warmup], concurrency, args.duration)
                )
                server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
                latencies, statuses, elapsed = asyncio.run(
                    load(requests[args.warmup :], concurrency, args.duration)
                )
                server_cpu = cpu_seconds(server.pid) - server_cpu
                client_cpu = time.process_time() - client_cpu
                report(args.scenario, concurrency, args.warmup, latencies, statuses, elapsed)
                done = len(latencies)
                print(
                    f"  CPU         server {server_cpu / done * 1000:.1f} ms/request, "
                    f"load client {client_cpu / done * 1000:.1f} ms/request, "
                    f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
                )
                if sender is not None:
                    print(
                        f"  send        {sent_so_far(engine):,} messages sent so far, "
                        f"still running: {sender.poll() is None}"
                    )
                outcomes.append((statuses, warmup_statuses))
        finally:
            server.terminate()
            server.wait(timeout=30)
            if sender is not None:
                sender.terminate()
                sender.wait(timeout=60)

        if args.scenario == "votes":
            check_votes(engine, outcomes)
        elif args.scenario == "clicks":
            check_clicks(engine, outcomes)
        elif args.scenario == "opens":
            check_opens(engine, outcomes)
        else:
            with engine.connect() as connection:
                unsubscribed = connection.scalar(
                    sa.select(sa.func.count()).where(col(Subscriber.status) == Status.UNSUBSCRIBED)
                )
                audited = connection.scalar(
                    sa.select(sa.func.count()).where(col(AuditEntry.cause) == Cause.ONE_CLICK)
                )
            print(
                f"  database    {unsubscribed:,} unsubscribed, {audited:,} one-click audit entries"
            )
            statuses = sum((Counter(s) for s, _ in outcomes), Counter())
            warmups = sum((Counter(w) for _, w in outcomes), Counter())
            check(dict(statuses), dict(warmups), unsubscribed or 0, audited or 0)
        engine.dispose()


def report(
    scenario: str,
    concurrency: int,
    warmup: int,
    latencies: list[float],
    statuses: dict[str, int],
    elapsed: float,
) -> None:
    done = len(latencies)
    name = {
        "unsubscribe": "one-click unsubscribe",
        "votes": "vote button, during a send",
        "clicks": "tracked-link redirect, during a send",
        "opens": "open pixel, during a send",
    }[scenario]
    print(
        f"{name}, {concurrency} connections, {done:,} requests "
        f"in {elapsed:.2f} s (after {warmup} warm-up requests)"
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


def unsubscribe_requests(
    settings: Settings, subscribers: int
) -> Callable[[int, int], list[tuple[str, bytes | None]]]:
    """One-click POSTs to distinct subscribers, never the same one in two rounds."""
    signer = signer_from_settings(settings)
    order = random.Random(8058).sample(range(1, subscribers + 1), subscribers)

    def make(round_number: int, count: int) -> list[tuple[str, bytes | None]]:
        picked = order[round_number * count : (round_number + 1) * count]
        return [
            (
                f"{settings.base_url}/unsubscribe/{signer.make(sid, Purpose.UNSUBSCRIBE)}",
                ONE_CLICK_BODY,
            )
            for sid in picked
        ]

    return make


def start_send(
    settings: Settings, workdir: Path, rate: float, extra: dict[str, str]
) -> subprocess.Popen[bytes]:
    """``digest send`` of the W47 edition in the background (memory backend)."""
    env = digest_env(settings, extra, DIGEST_SEND_RATE=str(rate))
    command = [sys.executable, "-m", "digest", "send", "--week", VOTE_WEEK, "--now"]
    return subprocess.Popen(
        command, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def vote_requests(
    engine: sa.Engine, settings: Settings, subscribers: int, sender: subprocess.Popen[bytes]
) -> Callable[[int, int], list[tuple[str, bytes | None]]]:
    """Vote button presses by random subscribers on random tools of the W47 edition."""
    deadline = time.monotonic() + 120
    while True:
        with engine.connect() as connection:
            edition_id = connection.scalar(
                sa.select(col(Edition.id)).where(col(Edition.week) == VOTE_WEEK)
            )
            snapshots = (
                connection.execute(
                    sa.select(col(EditionComparison.snapshot))
                    .where(col(EditionComparison.edition_id) == edition_id)
                    .order_by(col(EditionComparison.position))
                )
                .scalars()
                .all()
            )
        if edition_id is not None and snapshots and sent_so_far(engine) > 0:
            break
        if sender.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the send did not start")
        time.sleep(0.2)
    tools = [len(snapshot["tools"]) for snapshot in snapshots]
    signer = signer_from_settings(settings)

    def make(round_number: int, count: int) -> list[tuple[str, bytes | None]]:
        chance = random.Random(1000 + round_number)
        requests: list[tuple[str, bytes | None]] = []
        for _ in range(count):
            position = chance.randrange(len(tools))
            choice = chance.choice(("ship", "skip"))
            ref = VoteRef(
                chance.randint(1, subscribers),
                int(edition_id),
                position,
                chance.randrange(tools[position]),
                choice,  # type: ignore[arg-type]
            )
            url = f"{settings.base_url}/vote/{signer.make_vote(ref)}"
            requests.append((url, f"choice={choice}".encode("ascii")))
        return requests

    return make


def click_requests(
    engine: sa.Engine,
    settings: Settings,
    subscribers: int,
    sender: subprocess.Popen[bytes],
    *,
    pixel: bool = False,
) -> Callable[[int, int], list[tuple[str, bytes | None]]]:
    """GETs of tracked links of random subscribers and links of the W47 edition (``pixel``:
    of their open pixel)."""
    deadline = time.monotonic() + 120
    while True:
        with engine.connect() as connection:
            edition_id = connection.scalar(
                sa.select(col(Edition.id)).where(col(Edition.week) == VOTE_WEEK)
            )
            # Content links only (and the honeypot): the open pixel, last in the table, answers
            # an image, not a redirect.
            links = connection.scalar(
                sa.select(sa.func.count()).where(
                    col(EditionLink.edition_id) == edition_id, col(EditionLink.kind) != "open"
                )
            )
        if edition_id is not None and links and sent_so_far(engine) > 0:
            break
        if sender.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the send did not start")
        time.sleep(0.2)
    signer = signer_from_settings(settings)

    def make(round_number: int, count: int) -> list[tuple[str, bytes | None]]:
        chance = random.Random(2000 + round_number)
        return [
            (
                f"{settings.base_url}/r/"
                + signer.make_click(
                    ClickRef(
                        int(edition_id),
                        chance.randint(1, subscribers),
                        links if pixel else chance.randrange(links),  # the pixel is last
                    )
                ),
                None,
            )
            for _ in range(count)
        ]

    return make


def answers(
    outcomes: list[tuple[dict[str, int], dict[str, int]]], expected: str
) -> tuple[int, dict[str, int]]:
    """How many answers of every round (warm-up included) were ``expected``, and the others."""
    every: Counter[str] = Counter()
    for statuses, warmup in outcomes:
        every += Counter(statuses) + Counter(warmup)
    return every[expected], {code: n for code, n in every.items() if code != expected}


def check_clicks(engine: sa.Engine, outcomes: list[tuple[dict[str, int], dict[str, int]]]) -> None:
    """Every answer is a 302, and every one of them left one stored hit."""
    redirected, other = answers(outcomes, "302")
    with engine.connect() as connection:
        hits = connection.scalar(sa.select(sa.func.count()).select_from(ClickHit)) or 0
    print(f"  database    {hits:,} hits stored for {redirected:,} redirects")
    if other or hits != redirected:
        raise SystemExit(f"FAILED: {redirected:,} redirects, other answers {other}, {hits:,} hits")


def check_opens(engine: sa.Engine, outcomes: list[tuple[dict[str, int], dict[str, int]]]) -> None:
    """Every answer is a 200 (the GIF), and every one of them left one stored open."""
    answered, other = answers(outcomes, "200")
    with engine.connect() as connection:
        fetches = connection.scalar(sa.select(sa.func.count()).select_from(OpenHit)) or 0
        clicks = connection.scalar(sa.select(sa.func.count()).select_from(ClickHit)) or 0
    print(f"  database    {fetches:,} opens stored for {answered:,} pixels, {clicks:,} clicks")
    if other or fetches != answered or clicks:
        raise SystemExit(f"FAILED: {answered:,} pixels, other answers {other}, {fetches:,} opens")


def sent_so_far(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(sa.text("SELECT count(*) FROM delivery WHERE state = 'sent'")) or 0
        )


def check_votes(engine: sa.Engine, outcomes: list[tuple[dict[str, int], dict[str, int]]]) -> None:
    """Every 200 is one press; votes are at most one per (subscriber, comparison, tool)."""
    answered, other = answers(outcomes, "200")
    with engine.connect() as connection:
        presses = connection.scalar(sa.select(sa.func.count()).select_from(VoteEvent)) or 0
        votes = connection.scalar(sa.select(sa.func.count()).select_from(Vote)) or 0
        distinct = (
            connection.scalar(
                sa.select(sa.func.count()).select_from(
                    sa.select(VoteEvent.subscriber_id, VoteEvent.comparison_id, VoteEvent.tool_slug)  # type: ignore[call-overload]
                    .distinct()
                    .subquery()
                )
            )
            or 0
        )
    print(f"  database    {presses:,} presses, {votes:,} votes ({distinct:,} distinct targets)")
    if other or presses != answered or votes != distinct:
        raise SystemExit(
            f"FAILED: {answered:,} answered 200, other answers {other}, {presses:,} presses, "
            f"{votes:,} votes for {distinct:,} distinct targets"
        )


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
