"""MJML source to email HTML, with CSS inlining, compiled at most once per distinct source.

Compiling is the expensive step of rendering (hundreds of milliseconds for an edition), so the
result is cached by the SHA-256 of the source: the same edition and content variant compiles
once per process however many renderers or previews ask for it.

The HTML is post-processed in four safe ways: indentation at line starts is dropped (HTML
collapses it to the newline's single space anyway, and the bytes count against Gmail's
102 KB clipping limit), the CSS of ``<style>`` elements loses the spaces that mean nothing
(around braces, colons, semicolons, commas and child combinators), the ``color-scheme``
and ``supported-color-schemes`` meta tags are added after the viewport (the MJML port has no
``mj-raw`` in ``mj-head``), and every non-ASCII character becomes a numeric character
reference.
An ASCII document is copied per recipient with one byte per character and goes on the wire
as 7-bit text.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import re
import threading
from collections import OrderedDict
from html.parser import HTMLParser

from mjml import mjml_to_html

from digest.errors import DigestError

CACHE_SIZE = 32
# Apple Mail and iOS honour these and then use the template's dark styles instead of inverting.
COLOR_SCHEME_META = (
    '\n<meta name="color-scheme" content="light dark">'
    '\n<meta name="supported-color-schemes" content="light dark">'
)
_VIEWPORT = re.compile(r'<meta name="viewport"[^>]*>')
_INDENT = re.compile(r"\n[ \t]*(?:\n[ \t]*)*")
_EMPTY_TITLE = re.compile(r"<title>\s*</title>")
_STYLE = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.DOTALL)
_CSS_RUNS = re.compile(r"\s+")
# Not before ":" (``a :hover`` and ``a:hover`` differ) nor around "." "[" "#" (combinators).
_CSS_PADDING = re.compile(r"\s*([{};,>])\s*|(:)\s+")
_ACTIVE_TAGS = frozenset({"script", "iframe", "object", "embed", "form", "input", "base"})


class MjmlError(DigestError):
    """The MJML source could not be compiled (a broken template)."""

    exit_code = 65  # EX_DATAERR: the template is input, shipped or overridden


class MjmlCompiler:
    """Compiles MJML and remembers the results of the last ``CACHE_SIZE`` sources.

    ``compiles`` counts actual MJML runs (cache misses); tests and the benchmark read it.
    """

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self.cache_size = cache_size
        self.compiles = 0
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def compile(self, source: str) -> str:
        key = hashlib.sha256(source.encode("utf-8")).hexdigest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        html = compile_uncached(source)
        with self._lock:
            self.compiles += 1
            self._cache[key] = html
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return html

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def compile_uncached(source: str) -> str:
    """Run MJML on ``source`` and post-process the HTML (see the module docstring)."""
    try:
        result = mjml_to_html(source)
    except Exception as exc:  # the port raises bare ValueError/AssertionError on bad input
        raise MjmlError(f"MJML compile failed: {type(exc).__name__}: {exc}") from exc
    if result.errors:
        raise MjmlError("MJML compile failed: " + "; ".join(map(str, result.errors)))
    html = _INDENT.sub("\n", result.html).strip() + "\n"
    html = _STYLE.sub(lambda match: match[1] + minify_css(match[2]) + match[3], html)
    html = _VIEWPORT.sub(lambda match: match[0] + COLOR_SCHEME_META, html, count=1)
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")


def minify_css(css: str) -> str:
    """``css`` without the whitespace that carries no meaning, and without a last ``;``."""
    css = _CSS_RUNS.sub(" ", css)
    css = _CSS_PADDING.sub(lambda match: match[1] or match[2], css)
    return css.replace(";}", "}").strip()


def with_title(html: str, title: str) -> str:
    """``html`` with ``title`` (escaped) in its empty ``<title>`` element.

    The title is set here rather than with ``<mj-title>`` because the MJML port copies the
    ``mj-title`` text unescaped into an ``aria-label`` attribute, where a quote in a
    comparison title would end the attribute.
    """
    escaped = html_lib.escape(title, quote=True).encode("ascii", "xmlcharrefreplace").decode()
    return _EMPTY_TITLE.sub(lambda _match: f"<title>{escaped}</title>", html, count=1)


class _ActiveContent(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _ACTIVE_TAGS or tag.startswith("mj-"):
            self.problems.append(f"<{tag}> element")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{name} attribute on <{tag}>")
            if name in ("href", "src") and (value or "").strip().lower().startswith(
                ("javascript:", "data:", "vbscript:")
            ):
                self.problems.append(f"{name}={value!r} on <{tag}>")


def check_inert(html: str) -> None:
    """Refuse compiled HTML with scripts, event handlers, forms or leftover MJML tags.

    The templates produce none of these and content is escaped, so finding one means an
    escaping bug somewhere; failing the compile keeps it out of every inbox.
    """
    parser = _ActiveContent()
    parser.feed(html)
    parser.close()
    if parser.problems:
        raise MjmlError("compiled HTML has active content: " + "; ".join(parser.problems[:5]))


default_compiler = MjmlCompiler()


def compile_mjml(source: str) -> str:
    """Compile with the process-wide cache."""
    return default_compiler.compile(source)
