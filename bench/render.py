"""Rendering cost and the email's size: MJML once per edition, cheap personalization.

Prints the HTML part and the whole .eml (as ``digest.backends.mime`` writes it) for 6, 12 and
20 comparisons (W47, then the other fixtures, then copies under new titles), what the size
budget folded, and the page height at 375 px in Debian's Chromium (skipped when absent).
Sizes in kB of 1,000 bytes, as the goals and Gmail's notice count them. Then, for the six
comparisons of 2026-W47 (UTC):

- the MJML compile time of one edition (Jinja + MJML + CSS inlining; best and median of runs),
  and the whole variant compile (adds the text part and the slot split);
- personalized messages per second, single process, for 100,000 recipients: the personalized
  HTML + text (``personalize``: two signed links, greeting, both slot fills; also with the
  open pixel of ``DIGEST_TRACK_OPENS``, and without votes and tracking), complete
  ``OutgoingMessage`` objects (``message_for``), and ``OutgoingMessage`` construction alone;
- peak traced memory (tracemalloc) while personalizing 10,000 and 100,000 recipients, to show
  it does not grow with the recipient count.

Run: ``.venv/bin/python bench/render.py``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.backends.mime import build_mime, to_bytes
from digest.config import Settings
from digest.content.document import ComparisonDoc
from digest.content.validate import validate_comparison
from digest.content.weeks import IsoWeek
from digest.message import OutgoingMessage
from digest.render.compose import Recipient, personalize
from digest.render.edition import EditionRenderer
from digest.render.mjml import MjmlCompiler, compile_uncached
from digest.render.subject import MAX_SUBJECT

REPO = Path(__file__).resolve().parent.parent
WEEK = IsoWeek(2026, 47)
COMPILE_RUNS = 5
RECIPIENTS = 100_000
THROUGHPUT_RUNS = 3
NAMES = ("Zoë Fontaine", "José Almeida", "", "田中 陽翔", "Lindqvist, Astrid", "Ada")


def fixtures_dir() -> Path:
    for candidate in (
        REPO.parent / "shared" / "fixtures" / "comparisons",
        REPO / "examples" / "comparisons",
    ):
        if any(candidate.glob("*.json")):
            return candidate
    raise SystemExit("no comparison fixtures found (../shared/fixtures or examples/)")


def w47(directory: Path) -> list[ComparisonDoc]:
    docs = [
        validate_comparison(json.loads(path.read_text(encoding="utf-8")), path.name)
        for path in sorted(directory.glob("*.json"))
    ]
    chosen = [doc for doc in docs if IsoWeek.containing(doc.published_at, ZoneInfo("UTC")) == WEEK]
    return sorted(chosen, key=lambda doc: (doc.published_at, doc.slug))


def settings(*, track_opens: bool = False) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url="sqlite://",
        secret_key="bench-secret-0123456789abcdef",
        base_url="https://verdicts.example.com",
        track_opens=track_opens,
    )


def renderer(docs: list[ComparisonDoc], *, track_opens: bool = False) -> EditionRenderer:
    return EditionRenderer(
        settings(track_opens=track_opens),
        docs,
        week=WEEK,
        archive_url="https://verdicts.example.com/editions/47",
        compiler=MjmlCompiler(),
    )


def recipients(count: int) -> list[Recipient]:
    return [
        Recipient(n, f"reader{n}@example.com", NAMES[n % len(NAMES)]) for n in range(1, count + 1)
    ]


def pool(directory: Path, count: int) -> list[ComparisonDoc]:
    """``count`` comparisons: W47 first, then the other fixtures, then retitled copies."""
    first = w47(directory)
    docs = first + [
        validate_comparison(json.loads(path.read_text(encoding="utf-8")), path.name)
        for path in sorted(directory.glob("*.json"))
    ]
    out: list[ComparisonDoc] = []
    seen: set[str] = set()
    for doc in docs:
        if doc.slug not in seen:
            seen.add(doc.slug)
            out.append(doc)
    n = 0
    while len(out) < count:
        source = out[n]
        out.append(
            source.model_copy(update={"slug": f"{source.slug}-{n}", "title": f"{source.title} {n}"})
        )
        n += 1
    return out[:count]


def phone_height(html: str) -> int | None:
    """The page height at a 375 px viewport in Chromium, or None without Chromium."""
    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 375, "height": 800})
            page.route("**/*", lambda route: route.abort())
            page.set_content(html, wait_until="load")
            height: int = page.evaluate("document.documentElement.scrollHeight")
            return height
        finally:
            browser.close()


def bench_sizes(directory: Path) -> None:
    person = Recipient(7, "astrid@example.com", "Lindqvist, Astrid")
    longest = 0
    for count in (6, 12, 20):
        variant = renderer(pool(directory, count)).variant_for([])
        assert variant is not None
        message = variant.message_for(person, message_id="<size@verdicts.example.com>")
        html = len(message.html.encode("utf-8"))
        eml = len(to_bytes(build_mime(message)))
        longest = max(longest, len(variant.subject))
        height = phone_height(message.html) if count == 6 else None
        tall = f", {height:,} px tall at 375 px" if height else ""
        print(
            f"{count:2d} comparisons:              HTML {html / 1000:.1f} kB, .eml "
            f"{eml / 1000:.1f} kB{tall}; {variant.size_report()}"
        )
    print(f"longest subject:             {longest} characters (limit {MAX_SUBJECT})")


def bench_compile(docs: list[ComparisonDoc]) -> None:
    first = renderer(docs).variant_for([])  # also warms Jinja's template cache
    assert first is not None
    mjml_runs = []
    for _ in range(COMPILE_RUNS):
        start = time.perf_counter()
        compile_uncached(first.mjml)
        mjml_runs.append((time.perf_counter() - start) * 1000)
    variant_runs = []
    for _ in range(COMPILE_RUNS):
        start = time.perf_counter()
        renderer(docs).variant_for([])  # a fresh compiler: no cache
        variant_runs.append((time.perf_counter() - start) * 1000)
    print(f"comparisons in the edition:  {len(docs)}")
    print(
        f"MJML compile per edition:    best {min(mjml_runs):.0f} ms, "
        f"median {statistics.median(mjml_runs):.0f} ms ({COMPILE_RUNS} runs)"
    )
    print(
        f"whole variant compile:       best {min(variant_runs):.0f} ms, "
        f"median {statistics.median(variant_runs):.0f} ms (Jinja, MJML, text part, slots)"
    )


def _rate(label: str, work: Callable[[], None], note: str) -> None:
    """Rates per second of CPU time (this process only; the machine may be busy with
    others) and of wall-clock time, best of ``THROUGHPUT_RUNS``."""
    cpu_rates, wall_rates = [], []
    for _ in range(THROUGHPUT_RUNS):
        cpu, wall = time.process_time(), time.perf_counter()
        work()
        cpu_rates.append(RECIPIENTS / (time.process_time() - cpu))
        wall_rates.append(RECIPIENTS / (time.perf_counter() - wall))
    print(
        f"{label:29s}{max(cpu_rates):>9,.0f} per CPU second "
        f"({max(wall_rates):,.0f} per wall second; best of {THROUGHPUT_RUNS} x {RECIPIENTS:,}; "
        f"{note})"
    )


def bench_throughput(docs: list[ComparisonDoc]) -> None:
    edition = renderer(docs)
    variant = edition.variant_for([])
    without_votes = edition.variant_for([], votes=False)
    assert variant is not None and without_votes is not None
    people = recipients(RECIPIENTS)
    sample = variant.message_for(people[0], message_id="<1@bench>")
    print(
        f"one message:                 {len(sample.html) / 1024:.1f} KB HTML + "
        f"{len(sample.text) / 1024:.1f} KB text"
    )

    def messages() -> None:
        for person in people:
            variant.message_for(person, message_id="<bench@verdicts.example.com>")

    def copies() -> None:
        for person in people:
            personalize(variant, person)

    with_pixel = renderer(docs, track_opens=True).variant_for([])
    assert with_pixel is not None

    def copies_with_pixel() -> None:
        for person in people:
            personalize(with_pixel, person)

    def copies_without_votes() -> None:
        for person in people:
            personalize(without_votes, person)

    untracked = [replace(person, track_clicks=False) for person in people]

    def plain_copies() -> None:
        for person in untracked:
            personalize(without_votes, person)

    html, text = sample.html, sample.text
    context = variant.context

    def envelopes() -> None:
        for person in people:
            OutgoingMessage(
                sender=context.sender,
                to=person.email,
                to_name=person.name,
                subject=variant.subject,
                html=html,
                text=text,
                message_id="<bench@verdicts.example.com>",
                headers=sample.headers,
            )

    votes = len(variant.votes.numbers) if variant.votes else 0
    links = len(variant.links.numbers) if variant.links else 0
    _rate(
        "personalized HTML + text:",
        copies,
        f"two signed links, greeting, {votes} vote links, {links} tracked links, both parts",
    )
    _rate("  ... with the open pixel:", copies_with_pixel, "the above and its image (HTML only)")
    _rate("  ... vote links turned off:", copies_without_votes, f"and {links} tracked links")
    _rate("  ... and click tracking off:", plain_copies, "two signed links, greeting")
    _rate("complete messages:", messages, "the above plus OutgoingMessage and headers")
    _rate("OutgoingMessage alone:", envelopes, "its header validation, for comparison")


def bench_memory(docs: list[ComparisonDoc]) -> None:
    variant = renderer(docs).variant_for([])
    assert variant is not None
    peaks = {}
    for count in (10_000, 100_000):
        tracemalloc.start()
        for n in range(1, count + 1):
            person = Recipient(n, f"reader{n}@example.com", NAMES[n % len(NAMES)])
            message = variant.message_for(person, message_id=f"<{n}@bench>")
            del message  # a backend sends it and lets it go
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peaks[count] = peak
        print(f"peak traced memory:          {peak / 1024:,.0f} KB for {count:,} recipients")
    growth = peaks[100_000] / peaks[10_000]
    print(f"memory growth 10k -> 100k:   x{growth:.2f} (flat: one message at a time)")


def main() -> None:
    directory = fixtures_dir()
    bench_sizes(directory)
    docs = w47(directory)
    bench_compile(docs)
    bench_throughput(docs)
    bench_memory(docs)


if __name__ == "__main__":
    main()
