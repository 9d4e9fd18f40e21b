"""The plain-text part: rendered from the same view as the HTML, never scraped from it.

Paragraphs are filled to ``WIDTH`` = 76 columns (inside the 72–78 that mail clients and
terminals show unbroken); the only longer lines are URLs, which are written out in full on a
line of their own so that clients keep them clickable. Scores are drawn as ASCII bars
(``[##############......]``) so they line up whatever font shows them. The part goes out
quoted-printable when it is not plain ASCII (``digest.backends.mime``).
"""

from __future__ import annotations

import re
import textwrap

import jinja2

from digest.render.view import EditionView, ToolView

WIDTH = 76
BAR_WIDTH = 20
MAX_PERSONA_WIDTH = 12
TEMPLATE = "email/digest.txt.j2"
_SPACES = re.compile(r"\s+")


def wrap(text: str, indent: str = "", first: str = "", width: int = WIDTH) -> str:
    """``text`` on one paragraph filled to ``width`` columns; ``first`` prefixes line one."""
    flat = _SPACES.sub(" ", str(text)).strip()
    lines = textwrap.wrap(
        flat,
        width=width,
        initial_indent=first or indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n".join(lines) if lines else (first or indent).rstrip()


def bar(score: int, width: int = BAR_WIDTH) -> str:
    """``[##########..........]`` for 50 out of 100 (rounded to the nearest cell)."""
    filled = max(0, min(width, (score * width + 50) // 100))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def pad(text: str, width: int) -> str:
    """``text`` cut or padded with spaces to exactly ``width`` characters."""
    flat = _SPACES.sub(" ", text).strip()
    if len(flat) > width:
        return flat[: width - 1] + "."
    return flat.ljust(width)


def rule(char: str = "-") -> str:
    return char * WIDTH


def persona_width(tool: ToolView) -> int:
    """The column width of persona names for one tool's scorecard."""
    longest = max((len(score.persona) for score in tool.scores), default=0)
    return min(MAX_PERSONA_WIDTH, max(8, longest))


def render_text(environment: jinja2.Environment, view: EditionView) -> str:
    """The text part of ``view``, markers (slots) still in place."""
    template = environment.get_template(TEMPLATE)
    text = template.render(
        edition=view, wrap=wrap, bar=bar, pad=pad, rule=rule, persona_width=persona_width
    )
    # Blank-line runs collapse to one so that optional sections leave no holes.
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
