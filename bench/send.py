"""Send throughput of the delivery engine against the cost of the work it cannot avoid.

Usage: ``python bench/send.py [RECIPIENTS]`` (default 100,000). Everything goes through the
Postmark backend's wire format to a fake Postmark on 127.0.0.1 (a subprocess that reads and
discards each request body and answers one accepted entry per message, counting them with
``bytes.count``). Three figures, each measured in a fresh process:

- **digest**: the real thing on a fresh SQLite database — ``prepare_edition`` (the edition and
  its ledger) then ``DeliveryEngine.run`` with the Postmark backend: claims, per-recipient
  rendering, batches of 500, one transaction per batch to record every result;
- **(a) minimal sender**: the unavoidable work only — compile the edition's variant (the
  clock runs, as the digest's send phase compiles its variant too), personalize it for each
  recipient, build the same Postmark JSON, encode each 500-message batch with orjson, post it
  with one httpx client; no database;
- **(b) transport**: post one already-encoded 500-message batch over and over (the limit of
  the fake server and the HTTP client).

A pacing figure: 1,500 recipients at ``DIGEST_SEND_RATE=100`` through the Postmark backend to
an in-process fake that timestamps every accepted message: the busiest five-second window
(the target is at most 1.2 x rate x 5, the first call aside), the send time against N / rate
(at least 0.8), and the provider calls with their largest size (about one second's worth).

A fifth figure counts provider calls of the merge providers: the same digest run on 10,000
recipients with the SendGrid and with the Mailgun backend, each answered in-process by an
``httpx.MockTransport`` that counts calls and recipients (the templates go once per call,
each recipient's values beside it; see ``digest.backends.merge``).

(a) and (b) hand httpx the body in 1 MiB pieces: given one ``bytes`` object, httpcore copies
the unsent rest after every partial ``send``, which is quadratic in the body size (a
500-message batch of this edition is about 29 MB). The backend never makes that buffer: each
message stays in the pieces it was encoded in, joined about 192 KB at a time as the request
is written (``digest.backends.http.JsonArray``).

``BENCH_CONCURRENCY`` sets ``send_concurrency`` of the digest run (default 2, the settings'
default). (a) and the digest run take ``BENCH_REPEAT`` turns (default 3); the best of each
counts. It prints messages/s for each, the ratio digest/(a) (send phase; the target is at
least 0.9), and the peak RSS of the digest process for 10,000 and for the full run (the
target is under 300 MB and not growing with the list).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import socket
import socketserver
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT.parent / "shared" / "fixtures" / "comparisons"
if not FIXTURES.is_dir():
    FIXTURES = ROOT / "examples" / "comparisons"
WEEK = "2026-W47"
BATCH = 500
SMALL = 10_000
MERGE = ("sendgrid", "mailgun")
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "2"))  # the settings' default
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))  # turns of minimal and digest; best of each


# -- the fake provider -----------------------------------------------------------------------


class _FakePostmark(socketserver.BaseRequestHandler):
    """HTTP/1.1 keep-alive, just enough of it: read a request, answer one entry per message."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        buffer = bytearray(1 << 16)
        view = memoryview(buffer)
        pending = b""
        counter = 0
        while True:
            while b"\r\n\r\n" not in pending:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                pending += chunk
            head, _, pending = pending.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(buffer) < length:
                buffer = bytearray(length)
                view = memoryview(buffer)
            got = len(pending)
            view[:got] = pending
            pending = b""
            while got < length:
                received = sock.recv_into(view[got:length])
                if not received:
                    return
                got += received
            count = buffer.count(b'"To":', 0, length)
            entries = b",".join(
                b'{"ErrorCode":0,"Message":"OK","MessageID":"%d-%d","To":"r"}'
                % (id(self), counter + index)
                for index in range(count)
            )
            counter += count
            answer = b"[" + entries + b"]"
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
            )


def serve(port: int) -> None:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", port), _FakePostmark) as server:
        server.serve_forever()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the fake provider did not start")


# -- the measured runs (each in its own process) ---------------------------------------------


def _settings(database: str, port: int) -> Any:
    from digest.config import Settings

    return Settings(
        _env_file=None,
        environment="test",
        database_url=f"sqlite:///{database}",
        secret_key="bench-secret-0123456789abcdef",
        base_url="https://verdicts.example.com",
        email_backend="postmark",
        email_api_url=f"http://127.0.0.1:{port}",
        email_api_key="bench-token",
        send_rate=1e9,
        send_concurrency=CONCURRENCY,
        timezone="UTC",
    )


def _documents(settings: Any) -> list[Any]:
    from digest.content.validate import parse_comparisons

    docs = []
    for path in sorted(FIXTURES.glob("*.json")):
        for _label, doc in parse_comparisons(path.read_bytes(), str(path)):
            assert not isinstance(doc, Exception), doc
            docs.append(doc)
    start, end = _week().bounds(settings.zone)
    return sorted(
        (doc for doc in docs if start <= doc.published_at < end),
        key=lambda doc: (doc.published_at, doc.slug),
    )


def _week() -> Any:
    from digest.content.weeks import IsoWeek

    return IsoWeek.parse(WEEK)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _merge_backend(provider: str, calls: list[int]) -> Any:
    """SendGrid or Mailgun answered in-process; ``calls`` gets the recipients of each call."""
    from urllib.parse import parse_qsl

    from digest.backends.mailgun import MailgunBackend
    from digest.backends.sendgrid import SendGridBackend

    def answer(request: httpx.Request) -> httpx.Response:
        body = request.read()
        if provider == "sendgrid":
            calls.append(len(orjson.loads(body)["personalizations"]))
            return httpx.Response(202, headers={"X-Message-Id": "bench"})
        calls.append(sum(1 for key, _ in parse_qsl(body.decode("ascii")) if key == "to"))
        return httpx.Response(200, json={"id": "<bench@mg>", "message": "Queued."})

    transport = httpx.MockTransport(answer)
    if provider == "sendgrid":
        return SendGridBackend("bench-key", transport=transport)
    return MailgunBackend("bench-key", domain="mg.example.com", transport=transport)


def run_digest(
    recipients: int,
    port: int,
    provider: str = "postmark",
    *,
    backend: Any = None,
    rate: float | None = None,
) -> dict[str, Any]:
    import sqlalchemy as sa

    import digest.models
    from digest.backends.registry import get_backend
    from digest.content.importer import import_paths
    from digest.db import create_engine, utcnow
    from digest.delivery.prepare import message_factories, prepare_edition
    from digest.delivery.sender import DeliveryEngine
    from subscribers.models import Subscriber

    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(f"{tmp}/bench.db", port)
        if rate is not None:
            settings = settings.model_copy(update={"send_rate": rate})
        engine = create_engine(settings.database_url)
        digest.models.metadata.create_all(engine)
        import_paths(engine, [str(FIXTURES)])
        now = utcnow()
        table = cast(sa.Table, sa.inspect(Subscriber).local_table)
        with engine.begin() as connection:
            for start in range(0, recipients, 10_000):
                connection.execute(
                    sa.insert(table),
                    [
                        {
                            "email": f"reader{i}@example.com",
                            "email_key": f"reader{i}@example.com",
                            "name": f"Reader {i}",
                            "timezone": "UTC",
                            "categories": [],
                            "status": "active",
                            "paused": False,
                            "source": "bench",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in range(start, min(recipients, start + 10_000))
                    ],
                )
        started = time.perf_counter()
        outcome = prepare_edition(engine, settings, _week())
        assert outcome.edition is not None and outcome.edition.id is not None
        ledger_seconds = time.perf_counter() - started
        calls: list[int] = []
        if backend is not None:
            pass
        elif provider == "postmark":
            backend = get_backend(settings)
        else:
            backend = _merge_backend(provider, calls)
        sender = DeliveryEngine(engine, settings, backend, message_factories(engine, settings))
        started = time.perf_counter()
        report = sender.run([outcome.edition.id])
        send_seconds = time.perf_counter() - started
        backend.close()
        engine.dispose()
    assert report.stats["sent"] == recipients, report
    return {
        "ledger_seconds": ledger_seconds,
        "send_seconds": send_seconds,
        "rate": recipients / send_seconds,
        "rate_end_to_end": recipients / (send_seconds + ledger_seconds),
        "rss_mb": _peak_rss_mb(),
        "calls": len(calls),
        "largest_call": max(calls, default=0),
    }


PACED_RECIPIENTS = 1_500
PACED_RATE = 100.0


def run_paced(recipients: int) -> dict[str, Any]:
    """The digest engine at ``PACED_RATE`` against a fake Postmark that timestamps messages."""
    import bisect

    from digest.backends.postmark import PostmarkBackend

    moments: list[float] = []
    sizes: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        entries = orjson.loads(request.read())
        now = time.monotonic()
        sizes.append(len(entries))
        moments.extend([now] * len(entries))
        return httpx.Response(
            200,
            json=[
                {"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{n}", "To": entry["To"]}
                for n, entry in enumerate(entries)
            ],
        )

    backend = PostmarkBackend("bench-token", transport=httpx.MockTransport(answer))
    figures = run_digest(recipients, 0, backend=backend, rate=PACED_RATE)
    first = sizes[0] if sizes else 0
    rest = sorted(moments[first:])
    busiest = max(
        (bisect.bisect_right(rest, start + 5.0) - i for i, start in enumerate(rest)), default=0
    )
    return figures | {
        "busiest_5s": busiest,
        "calls": len(sizes),
        "largest_call": max(sizes, default=0),
        "paced_rate": PACED_RATE,
    }


def _payload(messages: list[Any]) -> list[dict[str, Any]]:
    """The Postmark batch body, as ``PostmarkBackend.plan`` writes it."""
    return [
        {
            "From": message.sender,
            "To": f"{message.to_name} <{message.to}>",
            "Subject": message.subject,
            "HtmlBody": message.html,
            "TextBody": message.text,
            "Headers": [
                *({"Name": k, "Value": v} for k, v in message.headers.items()),
                {"Name": "Message-ID", "Value": message.message_id},
            ],
            "MessageStream": "broadcast",
        }
        for message in messages
    ]


def _pieces(body: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    """The body in 1 MiB views: httpcore copies the unsent rest of a ``bytes`` body after every
    partial ``send`` (quadratic in the body size); separate pieces are written as they are."""
    view = memoryview(body)
    for start in range(0, len(body), size):
        yield cast(bytes, view[start : start + size])  # a view: no copy


def run_minimal(recipients: int, port: int, *, pre_encoded: bool) -> dict[str, Any]:
    from digest.render.compose import Recipient, new_message_id
    from digest.render.edition import EditionRenderer

    settings = _settings("/nonexistent/unused.db", port)
    documents = _documents(settings)
    # The clock starts before the variant is compiled: the digest's send phase compiles its
    # variant too (once, from the edition's snapshots), and that is work neither can avoid.
    started = time.perf_counter()
    renderer = EditionRenderer(
        settings, documents, week=_week(), archive_url="https://example.com/a"
    )
    variant = renderer.variant_for(())
    assert variant is not None
    domain = settings.sender_address.domain
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "X-Postmark-Server-Token": "bench-token",
    }

    def batch(start: int) -> bytes:
        messages = [
            variant.message_for(
                Recipient(i, f"reader{i}@example.com", f"Reader {i}"),
                message_id=new_message_id(domain),
            )
            for i in range(start, min(recipients, start + BATCH))
        ]
        return orjson.dumps(_payload(messages))

    encoded = batch(0) if pre_encoded else b""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        if pre_encoded:
            started = time.perf_counter()  # the transport alone: no compile, no encoding
        accepted = 0
        for start in range(0, recipients, BATCH):
            body = encoded if pre_encoded else batch(start)
            response = client.post(
                "/email/batch",
                content=_pieces(body),
                headers={**headers, "Content-Length": str(len(body))},
            )
            accepted += len(orjson.loads(response.content))
        seconds = time.perf_counter() - started
    expected = -(-recipients // BATCH) * BATCH if pre_encoded else recipients
    assert accepted == expected, (accepted, expected)
    return {"rate": accepted / seconds, "rss_mb": _peak_rss_mb()}


def measure(kind: str, recipients: int, port: int) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--run", kind, str(recipients), str(port)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    recipients = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    small_count = min(SMALL, recipients)
    server, port = start_server()
    try:
        transport = measure("transport", recipients, port)
        small = measure("digest", small_count, port)
        # The two measured in turns, REPEAT times, the best of each kept: on a shared machine
        # a burst of other work slows whichever run it meets, and the turns give both a
        # chance at a quiet moment.
        pairs = [
            (measure("minimal", recipients, port), measure("digest", recipients, port))
            for _ in range(REPEAT)
        ]
        minimal = max((pair[0] for pair in pairs), key=lambda figures: figures["rate"])
        full = max((pair[1] for pair in pairs), key=lambda figures: figures["rate"])
        full["rss_mb"] = max(pair[1]["rss_mb"] for pair in pairs)
        merge = {name: measure(f"digest-{name}", small_count, port) for name in MERGE}
        paced = measure("paced", PACED_RECIPIENTS, port)
    finally:
        server.terminate()
        server.wait()
    print(
        f"send: {recipients:,} recipients, Postmark backend -> fake provider on 127.0.0.1, "
        f"send_concurrency={CONCURRENCY}"
    )
    print(f"  (b) transport, pre-encoded batches      {transport['rate']:>9,.0f} msg/s")
    print(f"  (a) minimal sender, no database         {minimal['rate']:>9,.0f} msg/s")
    print(
        f"  digest send phase                       {full['rate']:>9,.0f} msg/s  "
        f"ratio {full['rate'] / minimal['rate']:.2f} (target >= 0.90)  (ledger "
        f"{full['ledger_seconds']:.1f} s before it; "
        f"{full['rate_end_to_end']:,.0f} msg/s end to end)"
    )
    print(
        "  turns (minimal, digest, ratio): "
        + "; ".join(
            f"{a['rate']:,.0f}, {b['rate']:,.0f}, {b['rate'] / a['rate']:.2f}" for a, b in pairs
        )
    )
    print(
        f"  peak RSS digest: {small['rss_mb']:.0f} MB at {small_count:,}, "
        f"{full['rss_mb']:.0f} MB at {recipients:,} (target < 300 MB, flat); "
        f"(a): {minimal['rss_mb']:.0f} MB"
    )
    for name, figures in merge.items():
        print(
            f"  {name:<8} {small_count:,} recipients in {figures['calls']:,} provider calls "
            f"(largest {figures['largest_call']:,}; one call per claimed batch of one variant), "
            f"{figures['rate']:,.0f} msg/s against an in-process fake"
        )
    limit = 1.2 * paced["paced_rate"] * 5
    print(
        f"  pacing at {paced['paced_rate']:.0f} msg/s, {PACED_RECIPIENTS:,} recipients: busiest "
        f"5 s window {paced['busiest_5s']} messages (target <= {limit:.0f}, first call aside); "
        f"send {paced['send_seconds']:.1f} s = "
        f"{paced['send_seconds'] / (PACED_RECIPIENTS / paced['paced_rate']):.2f} x N/rate "
        f"(target >= 0.80); {paced['calls']} calls, largest {paced['largest_call']}"
    )
    print(f"  measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--run":
        kind, count, server_port = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        if kind == "paced":
            figures = run_paced(count)
        elif kind.startswith("digest"):
            figures = run_digest(count, server_port, kind.partition("-")[2] or "postmark")
        else:
            figures = run_minimal(count, server_port, pre_encoded=kind == "transport")
        print(json.dumps(figures))
    else:
        main()
