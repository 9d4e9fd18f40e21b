"""What the vote tests share: the comparison voted on, vote links, and the user agents of
typical link scanners and prefetchers."""

from __future__ import annotations

from dataclasses import dataclass

from subscribers.tokens import TokenSigner, VoteRef

SITE = "https://verdicts.example.com"
COMPARISON = "deskpilot-vs-ticketsmith"
TOOLS = {"deskpilot": 0, "ticketsmith": 1}  # positions in the comparison


@dataclass(frozen=True)
class Voting:
    edition_id: int
    comparison_id: int
    subscriber_id: int
    signer: TokenSigner

    def ref(self, tool: str = "deskpilot", choice: str = "ship", **other: int) -> VoteRef:
        """The vote on ``tool`` of the edition's only comparison (positions as frozen)."""
        return VoteRef(
            other.get("subscriber_id", self.subscriber_id),
            other.get("edition_id", self.edition_id),
            other.get("comparison", 0),
            other.get("tool_position", TOOLS.get(tool, 0)),
            "ship" if choice == "ship" else "skip",
        )

    def url(self, tool: str = "deskpilot", choice: str = "ship", **other: int) -> str:
        return f"/vote/{self.signer.make_vote(self.ref(tool, choice, **other))}"


SCANNER_AGENTS = (
    # Microsoft Defender for Office 365 Safe Links (detonation uses a plain desktop Chrome UA).
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
    # Proofpoint URL Defense.
    "Mozilla/5.0 (compatible; Proofpoint URL Defense)",
    # Mimecast URL Protect.
    "Mimecast-URL-Protect/1.0",
    # Gmail's image and link proxy.
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    # Barracuda Link Protection.
    "Barracuda Sentinel (EE)",
    "curl/8.5.0",
)
