"""``digest preview``: show the editor exactly what a subscriber would receive, without sending.

Writes the HTML, the plain text or the whole MIME message (``eml``, every header included) to
stdout or ``--out``, and prints lint warnings (size, links, subject length...) on stderr.
``--serve`` runs a local web page instead that re-renders on every request and reloads
itself when a template changes.
"""

from __future__ import annotations

import enum
import sys
import tempfile
import webbrowser
from collections.abc import Callable
from html import escape as html_escape
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from digest.cli import common

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from starlette.applications import Starlette

    from digest.config import Settings
    from digest.content.weeks import IsoWeek
    from digest.editions.preview import Preview

DEFAULT_PORT = 8025
RELOAD_SCRIPT = """<script>
(function () {
  var seen = null;
  function poll() {
    fetch("/__templates_mtime").then(function (r) { return r.json(); }).then(function (d) {
      if (seen !== null && d.mtime !== seen) { location.reload(); return; }
      seen = d.mtime; setTimeout(poll, 1000);
    }).catch(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
</script>"""


class Format(enum.StrEnum):
    HTML = "html"
    TEXT = "text"
    EML = "eml"


def render_output(result: Preview, output: Format) -> bytes:
    """The bytes ``--format`` asks for (``eml``: the message exactly as it goes on the wire)."""
    from digest.backends.mime import build_mime, to_bytes

    message = result.message
    if message is None:
        return b""
    if output is Format.HTML:
        return message.html.encode("utf-8")
    if output is Format.TEXT:
        return message.text.encode("utf-8")
    return to_bytes(build_mime(message))


def _report(result: Preview) -> None:
    for note in result.notes:
        common.echo_err(f"note: {note}")
    for warning in result.warnings:
        common.echo_err(f"warning: {warning}")


def _delivery_time(engine: Engine, settings: Settings, week: IsoWeek, email: str) -> str | None:
    from digest.db import session_scope
    from digest.delivery.prepare import delivery_time
    from digest.editions.preview import find_subscriber

    with session_scope(engine) as session:
        return delivery_time(session, settings, week, find_subscriber(session, email))


def preview(
    *,
    week: str | None = typer.Option(
        None, "--week", help="ISO week such as 2026-W47 (default: the last complete week)."
    ),
    as_email: str | None = typer.Option(
        None,
        "--as",
        help="Render for this subscriber (their categories and signed links). "
        "Default: a sample reader following every category.",
    ),
    output: Format = typer.Option(
        Format.HTML, "--format", help="html, text, or eml (the full MIME message)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write to this file and print its path (default: stdout)."
    ),
    open_browser: bool = typer.Option(
        False, "--open", help="Open the result in a web browser (writes a file if no --out)."
    ),
    serve: bool = typer.Option(
        False, "--serve", help="Serve a live preview on 127.0.0.1 that reloads on template edits."
    ),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port for --serve."),
) -> None:
    """Render a week's edition as one subscriber would receive it. Sends nothing, writes nothing
    to the database."""
    from digest.editions.preview import build_preview

    settings = common.settings()
    selected = common.resolve_week(week, settings)
    if serve:
        serve_preview(settings, selected, email=as_email, port=port)
        return
    engine = common.engine(settings)
    result = build_preview(settings, engine, selected, email=as_email)
    _report(result)
    if as_email is not None and result.message is not None:
        when = _delivery_time(engine, settings, selected, as_email)
        if when:
            common.echo_err(f"note: {when}")
    if result.message is None:
        return
    data = render_output(result, output)
    if out is None and open_browser:
        suffix = {Format.HTML: ".html", Format.TEXT: ".txt", Format.EML: ".eml"}[output]
        with tempfile.NamedTemporaryFile(
            "wb", prefix=f"digest-{selected}-", suffix=suffix, delete=False
        ) as handle:
            out = Path(handle.name)
    if out is not None:
        out.write_bytes(data)
        typer.echo(str(out))
        if open_browser and not webbrowser.open(out.resolve().as_uri()):
            common.echo_err(
                f"warning: --open found no web browser to run (set BROWSER to choose one); "
                f"the preview is at {out.resolve()}"
            )
        return
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def create_preview_app(settings: Settings, week: IsoWeek, *, email: str | None = None) -> Starlette:
    """A Starlette app: ``/`` (HTML, ``?format=text|eml``, ``?week=``, ``?as=``) and the
    template change endpoint its page polls. Every request renders from fresh templates.

    Whatever goes wrong with one request (a template that does not compile, an unknown
    ``?as=`` address, a bad ``?week=`` or ``?format=``) is shown in the page, which keeps its
    reload script so that fixing the template reloads it, and printed as one line in the
    terminal. Lines are printed once per template change, not at every reload.
    """
    import jinja2
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from digest.content.weeks import IsoWeek
    from digest.editions.preview import build_preview
    from digest.errors import DigestError, InputError, NotFoundError
    from digest.render import templates

    engine = common.engine(settings)
    printed = _OncePerChange(templates.templates_mtime)

    def show(lines: list[str], status: int) -> Response:
        """The preview's answer when there is no email to show: the lines, and the script."""
        body = "".join(f"<p>{html_escape(line)}</p>" for line in lines)
        return HTMLResponse(
            "<!doctype html><html><head><meta charset=utf-8><title>digest preview</title>"
            f"</head><body style='font-family:monospace'>{body}{RELOAD_SCRIPT}</body></html>",
            status_code=status,
        )

    def page(request: Request) -> Response:
        params = request.query_params
        try:
            try:
                output = Format(params.get("format", "html"))
            except ValueError:
                raise InputError(
                    f"unknown format {params['format']!r} (html, text or eml)"
                ) from None
            chosen = params.get("week")
            target = IsoWeek.parse(chosen) if chosen else week
            result = build_preview(
                settings,
                engine,
                target,
                email=params.get("as", email),
                environment=templates.make_environment(auto_reload=True),
            )
        except DigestError as exc:
            status = 400 if isinstance(exc, InputError) else 500
            status = 404 if isinstance(exc, NotFoundError) else status
            return show(_failed(printed, str(exc)), status)
        except jinja2.TemplateError as exc:
            return show(_failed(printed, _template_problem(exc)), 500)
        except Exception as exc:  # a template's bug (a filter on the wrong type...): show it
            return show(_failed(printed, f"{type(exc).__name__}: {exc}"), 500)
        printed.report(
            [f"note: {note}" for note in result.notes]
            + [f"warning: {warning}" for warning in result.warnings]
        )
        if result.message is None:
            return show(list(result.notes) or ["nothing to show"], 404)
        if output is Format.HTML:
            html = result.message.html
            marker = html.rfind("</body>")
            cut = marker if marker >= 0 else len(html)
            return HTMLResponse(html[:cut] + RELOAD_SCRIPT + html[cut:])
        return PlainTextResponse(render_output(result, output).decode("utf-8", "replace"))

    def mtime(_request: Request) -> Response:
        return JSONResponse({"mtime": templates.templates_mtime()})

    return Starlette(
        routes=[Route("/", page), Route("/__templates_mtime", mtime)],
    )


class _OncePerChange:
    """Prints each terminal line once until the templates change (then once again)."""

    def __init__(self, version: Callable[[], float]) -> None:
        self._version = version
        self._seen: tuple[float, set[str]] = (version(), set())

    def report(self, lines: list[str]) -> None:
        current = self._version()
        if current != self._seen[0]:
            self._seen = (current, set())
        for line in lines:
            if line not in self._seen[1]:
                self._seen[1].add(line)
                common.echo_err(line)


def _failed(printed: _OncePerChange, problem: str) -> list[str]:
    """The problem as one line, printed in the terminal (once per change) and for the page."""
    line = "error: " + " ".join(problem.split())
    printed.report([line])
    return [line]


def _template_problem(exc: Exception) -> str:
    """``file:line: message`` for a Jinja syntax error, the message for the others."""
    import jinja2

    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = exc.name or exc.filename or "template"
        return f"{where}:{exc.lineno}: {exc.message}"
    return f"template: {exc}"


def serve_preview(settings: Settings, week: IsoWeek, *, email: str | None, port: int) -> None:
    """Serve ``create_preview_app`` on 127.0.0.1 until interrupted."""
    import uvicorn

    common.require_free_port("127.0.0.1", port)
    app = create_preview_app(settings, week, email=email)
    common.echo_err(
        f"previewing {week} on http://127.0.0.1:{port}/ "
        f"(?format=text|eml, ?week=YYYY-Www, ?as=EMAIL); Ctrl-C stops"
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
