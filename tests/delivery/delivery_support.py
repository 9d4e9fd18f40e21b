"""Helpers shared by the delivery tests (imported by name): subscribers in bulk, a fake
Postmark that records what it accepted, and running the ``digest`` command as a process."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.content.weeks import IsoWeek
from digest.db import utcnow
from digest.delivery.models import Delivery
from digest.delivery.sender import DeliveryEngine
from subscribers.models import Subscriber

EngineFactory = Callable[..., DeliveryEngine]
W47 = IsoWeek(2026, 47)
TEST_SECRET = "Jt7fQm2VxR9kLp4WzN8cYd3HbG6sKe1TqA5uXo0iMv"
POSTMARK_TOKEN = "test-postmark-token"
REPO_ROOT = Path(__file__).resolve().parents[2]
SUBSCRIBER = cast(sa.Table, sa.inspect(Subscriber).local_table)
DELIVERY = cast(sa.Table, sa.inspect(Delivery).local_table)
# The W47 comparisons are in these categories; "Image & Video" has none that week.
CATEGORY_CHOICES: tuple[list[str], ...] = (
    [],
    ["Developer Tools"],
    ["Productivity", "Data & Analytics"],
    ["Customer Support"],
)


def add_subscribers(
    engine: Engine,
    count: int,
    *,
    start: int = 0,
    categories: Sequence[list[str]] = CATEGORY_CHOICES,
    status: str = "active",
) -> list[int]:
    """``count`` subscribers ``reader{n}@example.com`` inserted in bulk; their ids."""
    now = utcnow()
    rows = [
        {
            "email": f"reader{n}@example.com",
            "email_key": f"reader{n}@example.com",
            "name": f"Reader {n}",
            "timezone": "UTC",
            "categories": categories[n % len(categories)],
            "status": status,
            "paused": False,
            "source": "test",
            "created_at": now,
            "updated_at": now,
            "confirmed_at": now,
        }
        for n in range(start, start + count)
    ]
    with engine.begin() as connection:
        for first in range(0, len(rows), 5000):
            connection.execute(sa.insert(SUBSCRIBER), rows[first : first + 5000])
        newest = connection.execute(
            sa.select(SUBSCRIBER.c.id).order_by(SUBSCRIBER.c.id.desc()).limit(count)
        ).all()
    return sorted(int(row[0]) for row in newest)


def ledger(engine: Engine, edition_id: int | None = None) -> list[Any]:
    """Every delivery row (of one edition), by id."""
    statement = sa.select(DELIVERY).order_by(DELIVERY.c.id)
    if edition_id is not None:
        statement = statement.where(DELIVERY.c.edition_id == edition_id)
    with engine.connect() as connection:
        return list(connection.execute(statement).all())


def states(engine: Engine, edition_id: int | None = None) -> Counter[str]:
    return Counter(row.state for row in ledger(engine, edition_id))


# -- a fake Postmark -------------------------------------------------------------------------


class FakePostmark:
    """``POST /email/batch`` as Postmark answers it, recording every accepted message.

    ``accepted`` lists ``(message_id, address)`` in order. ``fail_next`` queues whole-call
    answers (status, headers, body) served before anything is accepted; ``reject`` makes
    the given addresses come back with error 406 (inactive recipient).
    """

    def __init__(self) -> None:
        self.accepted: list[tuple[str, str]] = []
        self.accepted_at: list[float] = []  # time.monotonic() of each accepted message
        self.calls = 0
        # Called with the call's number (1-based) before anything is accepted; an answer
        # (status, headers, body) fails the call.
        self.hook: Callable[[int], tuple[int, dict[str, str], bytes] | None] | None = None
        self.failures: deque[tuple[int, dict[str, str], bytes]] = deque()
        self.rejected: set[str] = set()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, headers, answer = fake.answer(self.path, self.headers, body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakePostmark:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, status: int, body: bytes = b"{}", **headers: str) -> None:
        with self.lock:
            self.failures.append((status, headers, body))

    def answer(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.calls += 1
            if path != "/email/batch":
                return 404, {}, b'{"Message":"not found"}'
            if headers.get("X-Postmark-Server-Token") != POSTMARK_TOKEN:
                return 401, {}, b'{"ErrorCode":10,"Message":"Bad or missing Server API token."}'
            if self.failures:
                status, extra, answer = self.failures.popleft()
                return status, extra, answer
            if self.hook is not None:
                failure = self.hook(self.calls)
                if failure is not None:
                    return failure
            entries = []
            for item in orjson.loads(body):
                address = parseaddr(item["To"])[1]
                message_id = next(h["Value"] for h in item["Headers"] if h["Name"] == "Message-ID")
                if address in self.rejected:
                    entries.append(
                        {
                            "ErrorCode": 406,
                            "Message": f"Inactive recipient {address}",
                            "To": address,
                        }
                    )
                    continue
                self.accepted.append((message_id, address))
                self.accepted_at.append(time.monotonic())
                entries.append(
                    {
                        "ErrorCode": 0,
                        "Message": "OK",
                        "MessageID": f"pm-{len(self.accepted)}",
                        "To": address,
                    }
                )
            return 200, {}, orjson.dumps(entries)

    def message_ids(self) -> Counter[str]:
        with self.lock:
            return Counter(message_id for message_id, _address in self.accepted)

    def addresses(self) -> Counter[str]:
        with self.lock:
            return Counter(address for _message_id, address in self.accepted)


# -- the command as a process ------------------------------------------------------------------

DIGEST = [sys.executable, "-m", "digest"]


def digest_env(database_url: str, postmark: FakePostmark, **settings: str) -> dict[str, str]:
    """The environment of a ``digest`` process sending through ``postmark``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIGEST_")}
    env.update(
        {
            "DIGEST_ENVIRONMENT": "test",
            "DIGEST_SECRET_KEY": TEST_SECRET,
            "DIGEST_DATABASE_URL": database_url,
            "DIGEST_TIMEZONE": "UTC",
            "DIGEST_BASE_URL": "https://verdicts.example.com",
            "DIGEST_EMAIL_BACKEND": "postmark",
            "DIGEST_EMAIL_API_URL": postmark.url,
            "DIGEST_EMAIL_API_KEY": POSTMARK_TOKEN,
            "DIGEST_SEND_RATE": "100000",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    env.update({f"DIGEST_{key.upper()}": value for key, value in settings.items()})
    return env


def start_digest(args: Iterable[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        [*DIGEST, *args], env=env, cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT
    )


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "environment": "test",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "base_url": "https://verdicts.example.com",
        "timezone": "UTC",
        "send_rate": 1e6,
    }
    values.update(overrides)
    return Settings(**values)


def at(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment).replace(tzinfo=dt.UTC)
