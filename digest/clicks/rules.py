"""Which hits on tracked links were people: one small function per rule.

Security gateways (Microsoft Defender Safe Links, Proofpoint, Mimecast, Barracuda) and mail
clients' link checkers fetch the links of a message within seconds of delivery. A hit is
``automated`` when any rule says so, with the first rule that matched (in ``Reason`` order)
stored as its reason; otherwise it is ``human``:

- ``head``: a HEAD request (people's browsers send GET);
- ``scanner-agent``: a known scanner or HTTP library user agent, or none at all;
- ``honeypot``: the client (network and user agent) also fetched the edition's honeypot link,
  which no person can see or reach;
- ``burst``: the subscriber's hits reached 3 or more distinct links within 2 seconds;
- ``too-soon``: within ``min_seconds`` of the provider accepting the message.

``classify`` applies them to all hits of one edition at once, because two rules look at other
hits (a honeypot hit may come after the scanner's other hits).

A fetch of the open pixel is not a click and never meets the click rules (``burst`` counts
distinct links, and one pixel would make every click after an open look like a sweep).
``classify_open`` asks the two rules that judge one request alone, ``head`` and
``scanner-agent``. The others cannot help: a proxy fetching images for a person (Apple Mail
Privacy Protection, Gmail's image proxy) fetches on delivery from a browser-like agent, as a
gateway does, so no rule tells a prefetch from a reading; the report says opens are
unreliable instead.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HUMAN = "human"
AUTOMATED = "automated"
BURST_LINKS = 3
BURST_SECONDS = 2.0

# Scanners, gateways, link checkers and HTTP libraries; browsers never say these words.
SCANNER_AGENTS = re.compile(
    r"bot\b|bot/|crawl|spider|scan|preview|proofpoint|mimecast|barracuda|safelinks|"
    r"defender|forcepoint|trendmicro|symantec|sophos|cisco|ironport|fortiguard|"
    r"python-|python/|requests|curl|wget|go-http-client|java/|okhttp|libwww|httpclient|"
    r"axios|node-fetch|headless|phantomjs|slurp|urlscan|microsoft office|ms-office",
    re.IGNORECASE,
)


class Reason(enum.StrEnum):
    """Why a hit is automated, in the order rules are asked."""

    HEAD = "head"
    SCANNER_AGENT = "scanner-agent"
    HONEYPOT = "honeypot"
    BURST = "burst"
    TOO_SOON = "too-soon"


@dataclass(frozen=True, slots=True)
class Hit:
    """One raw hit, as the rules see it."""

    subscriber_id: int
    link: int
    at: dt.datetime
    method: str
    user_agent: str
    network: str


def is_head(hit: Hit) -> bool:
    return hit.method.upper() == "HEAD"


def is_scanner_agent(hit: Hit) -> bool:
    agent = hit.user_agent.strip()
    return not agent or SCANNER_AGENTS.search(agent) is not None


def is_too_soon(hit: Hit, accepted_at: dt.datetime | None, min_seconds: float) -> bool:
    """Within ``min_seconds`` of the provider accepting the message (None: not known)."""
    if accepted_at is None:
        return False
    return (hit.at - accepted_at).total_seconds() < min_seconds


def honeypot_clients(hits: Sequence[Hit], honeypot: int) -> set[int]:
    """Indices of the hits whose client (network and user agent) fetched ``honeypot``."""
    marked = {(hit.network, hit.user_agent) for hit in hits if hit.link == honeypot}
    return {i for i, hit in enumerate(hits) if (hit.network, hit.user_agent) in marked}


def bursts(
    hits: Sequence[Hit], *, links: int = BURST_LINKS, seconds: float = BURST_SECONDS
) -> set[int]:
    """Indices of the hits in any window of ``seconds`` in which one subscriber's hits reach
    ``links`` distinct links."""
    by_subscriber: dict[int, list[int]] = defaultdict(list)
    for index, hit in enumerate(hits):
        by_subscriber[hit.subscriber_id].append(index)
    found: set[int] = set()
    window = dt.timedelta(seconds=seconds)
    for indices in by_subscriber.values():
        indices.sort(key=lambda i: hits[i].at)
        start = 0
        for end, index in enumerate(indices):
            while hits[index].at - hits[indices[start]].at > window:
                start += 1
            members = indices[start : end + 1]
            if len({hits[i].link for i in members}) >= links:
                found.update(members)
    return found


def classify(
    hits: Sequence[Hit],
    *,
    accepted: Mapping[int, dt.datetime],
    min_seconds: float,
    honeypot: int,
) -> list[Reason | None]:
    """Each hit's reason for being automated, or None for a person. ``accepted`` gives the
    time the provider accepted each subscriber's message."""
    in_honeypot = honeypot_clients(hits, honeypot)
    in_burst = bursts(hits)
    reasons: list[Reason | None] = []
    for index, hit in enumerate(hits):
        if is_head(hit):
            reasons.append(Reason.HEAD)
        elif is_scanner_agent(hit):
            reasons.append(Reason.SCANNER_AGENT)
        elif index in in_honeypot:
            reasons.append(Reason.HONEYPOT)
        elif index in in_burst:
            reasons.append(Reason.BURST)
        elif is_too_soon(hit, accepted.get(hit.subscriber_id), min_seconds):
            reasons.append(Reason.TOO_SOON)
        else:
            reasons.append(None)
    return reasons


def classify_open(hit: Hit) -> Reason | None:
    """Why a fetch of the open pixel is automated, or None (see the module docstring)."""
    if is_head(hit):
        return Reason.HEAD
    if is_scanner_agent(hit):
        return Reason.SCANNER_AGENT
    return None
