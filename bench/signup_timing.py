"""Sign-up answers take the same time whether the address is new or already known.

Serves the real app under uvicorn (in this process, on a fresh SQLite file with ``--known``
subscribers: active, pending and unsubscribed ones), then POSTs ``/subscribe`` over one
keep-alive connection, alternating a new address and a known one so that any drift of the
machine hits both alike (an untimed GET after each lets the sign-up's background work finish
first), and prints the median answer time of each and their difference. The
answer is sent before the sign-up touches the database, so the difference should be noise:
under 0.5 ms.

    python bench/signup_timing.py [--requests 400] [--known 2000]
"""

from __future__ import annotations

import argparse
import secrets
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

import digest.models
from digest.backends.memory import MemoryBackend
from digest.config import Settings
from digest.db import create_engine, session_scope
from digest.web.app import create_app
from subscribers import lifecycle
from subscribers.models import Cause

LIMIT = 0.5  # ms


def seed(settings: Settings, count: int) -> list[str]:
    engine = create_engine(settings.database_url)
    digest.models.metadata.create_all(engine)
    known = []
    with session_scope(engine) as session:
        for number in range(count):
            email = f"known{number}@example.com"
            kind = number % 3
            outcome = lifecycle.signup(
                session, email, source="bench", actor="bench", confirmed=kind != 1
            )
            if kind == 2 and outcome.subscriber and outcome.subscriber.id:
                lifecycle.unsubscribe(
                    session, outcome.subscriber.id, cause=Cause.ADMIN, actor="bench"
                )
            known.append(email)
    engine.dispose()
    return known


def serve(settings: Settings) -> tuple[uvicorn.Server, str]:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by connections
    sock.bind(("127.0.0.1", 0))
    app = create_app(settings, backend=MemoryBackend())
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


class Connection:
    """HTTP/1.1 keep-alive over one socket, each request written in one piece (a client that
    writes headers and body apart meets Nagle's algorithm and delayed ACKs: 40 ms a request)."""

    def __init__(self, base_url: str) -> None:
        host, _, port = base_url.removeprefix("http://").partition(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def request(self, method: str, path: str, body: str = "") -> int:
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
        if method == "POST":
            head += "Content-Type: application/x-www-form-urlencoded\r\n"
            head += f"Content-Length: {len(body)}\r\n"
        self.sock.sendall((head + "\r\n" + body).encode())
        status = int(self.reader.readline().split()[1])
        length = 0
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        self.reader.read(length)
        return status

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.reader.close()
        self.sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="per kind of address")
    parser.add_argument("--known", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            secret_key=secrets.token_urlsafe(48),  # type: ignore[arg-type]
            base_url="https://verdicts.example.com",
            email_backend="memory",
            subscribe_rate_per_minute=10**9,
        )
        known = seed(settings, args.known)
        server, base_url = serve(settings)
        times: dict[str, list[float]] = {"new": [], "known": []}
        with Connection(base_url) as client:
            for number in range(20):  # warm-up
                client.request("POST", "/subscribe", f"email=warm{number}%40example.com")
                client.request("GET", "/subscribe")
            for number in range(args.requests):
                for kind, email in (
                    ("new", f"new{number}@example.com"),
                    ("known", known[number % len(known)]),
                ):
                    body = "email=" + email.replace("@", "%40")
                    started = time.perf_counter()
                    status = client.request("POST", "/subscribe", body)
                    times[kind].append((time.perf_counter() - started) * 1000)
                    assert status == 200, status
                    # Untimed: on this connection it waits for the sign-up's background work,
                    # so the next timed answer does not include it.
                    client.request("GET", "/subscribe")
        server.should_exit = True
    new, old = statistics.median(times["new"]), statistics.median(times["known"])
    difference = abs(new - old)
    print(f"sign-up answer, median over {args.requests} each:")
    print(f"  new address     {new:7.3f} ms")
    print(f"  known address   {old:7.3f} ms")
    verdict = "ok" if difference < LIMIT else "OVER"
    print(f"  difference      {difference:7.3f} ms  ({verdict}: limit {LIMIT} ms)")


if __name__ == "__main__":
    main()
