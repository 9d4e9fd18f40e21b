"""The bot rules, each on its own, then together on scripted hits: a scanner sweeping every
link in one second, a HEAD, a honeypot hit, and a person clicking one link minutes after
delivery. Only the person is human."""

from __future__ import annotations

import datetime as dt

from digest.clicks.rules import (
    Hit,
    Reason,
    bursts,
    classify,
    honeypot_clients,
    is_head,
    is_scanner_agent,
    is_too_soon,
)

T0 = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1 Safari"


def hit(
    subscriber: int = 1,
    link: int = 1,
    seconds: float = 600,
    method: str = "GET",
    agent: str = BROWSER,
    network: str = "198.51.100.0/24",
) -> Hit:
    return Hit(subscriber, link, T0 + dt.timedelta(seconds=seconds), method, agent, network)


def test_head_requests_are_automated() -> None:
    assert is_head(hit(method="HEAD")) and is_head(hit(method="head"))
    assert not is_head(hit())


def test_scanner_agents_are_automated() -> None:
    for agent in (
        "",
        "python-requests/2.32",
        "curl/8.5.0",
        "Go-http-client/1.1",
        "Mozilla/5.0 (compatible; Barracuda Sentinel)",
        "Proofpoint URL Defense",
        "Mozilla/5.0 (Windows NT 10.0) Microsoft Office/16.0",
        "Mozilla/5.0 (compatible; bingbot/2.0)",
        "Mozilla/5.0 HeadlessChrome/120.0",
    ):
        assert is_scanner_agent(hit(agent=agent)), agent
    for agent in (
        BROWSER,
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ):
        assert not is_scanner_agent(hit(agent=agent)), agent


def test_hits_soon_after_acceptance_are_automated() -> None:
    assert is_too_soon(hit(seconds=59), T0, 60)
    assert not is_too_soon(hit(seconds=60), T0, 60)
    assert not is_too_soon(hit(seconds=1), None, 60)  # acceptance unknown: no verdict


def test_three_distinct_links_within_two_seconds_are_a_burst() -> None:
    sweep = [hit(link=n, seconds=600 + n * 0.5) for n in (1, 2, 3)]
    assert bursts(sweep) == {0, 1, 2}
    slow = [hit(link=n, seconds=600 + n * 1.5) for n in (1, 2, 3)]
    assert bursts(slow) == set()
    same_link = [hit(link=1, seconds=600 + n * 0.1) for n in range(5)]
    assert bursts(same_link) == set()  # a double click is not a sweep
    two_readers = [hit(subscriber=s, link=s, seconds=600) for s in (1, 2, 3)]
    assert bursts(two_readers) == set()  # per subscriber


def test_the_honeypot_marks_its_client_for_the_edition() -> None:
    hits = [
        hit(link=2, agent="Mozilla/5.0 gateway"),
        hit(link=0, agent="Mozilla/5.0 gateway", seconds=900),
        hit(link=2, agent=BROWSER),
        hit(link=2, agent="Mozilla/5.0 gateway", network="203.0.113.0/24"),
    ]
    assert honeypot_clients(hits, honeypot=0) == {0, 1}


def test_scripted_hits_leave_exactly_the_person() -> None:
    accepted = {1: T0, 2: T0, 3: T0, 4: T0}
    scanner = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0"
    hits = [
        # subscriber 1's gateway sweeps every link within one second, 5 minutes after delivery
        *(
            hit(1, link, 300 + link * 0.1, agent=scanner, network="40.94.0.0/24")
            for link in range(8)
        ),
        # a HEAD check of subscriber 2's links
        hit(2, 3, 400, method="HEAD"),
        # a prefetcher fetches subscriber 3's honeypot, and later one content link
        hit(3, 0, 500, agent="Mozilla/5.0 LinkCheck", network="52.1.2.0/24"),
        hit(3, 4, 800, agent="Mozilla/5.0 LinkCheck", network="52.1.2.0/24"),
        # the person: subscriber 4 clicks one link 12 minutes after delivery
        hit(4, 5, 720),
        # a scanner fetching in the first seconds after acceptance
        hit(2, 6, 5, agent=BROWSER, network="203.0.113.0/24"),
    ]
    reasons = classify(hits, accepted=accepted, min_seconds=60, honeypot=0)
    humans = [h for h, reason in zip(hits, reasons, strict=True) if reason is None]
    assert humans == [hit(4, 5, 720)]
    # The sweep includes link 0, the honeypot: the honeypot rule comes before the burst rule.
    assert reasons[:8] == [Reason.HONEYPOT] * 8
    assert reasons[8] == Reason.HEAD
    assert reasons[9:11] == [Reason.HONEYPOT, Reason.HONEYPOT]
    assert reasons[12] == Reason.TOO_SOON
