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
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from digest.cli import common

if TYPE_CHECKING:
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
    result = build_preview(settings, common.engine(settings), selected, email=as_email)
    _report(result)
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
    template change endpoint its page polls. Every request renders from fresh templates."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from digest.content.weeks import IsoWeek
    from digest.editions.preview import build_preview
    from digest.render import templates

    engine = common.engine(settings)

    def page(request: Request) -> Response:
        chosen = request.query_params.get("week")
        target = IsoWeek.parse(chosen) if chosen else week
        environment = templates.make_environment(auto_reload=True)
        result = build_preview(
            settings,
            engine,
            target,
            email=request.query_params.get("as", email),
            environment=environment,
        )
        _report(result)
        if result.message is None:
            notes = "\n".join(result.notes) or "nothing to show"
            return PlainTextResponse(notes + "\n", status_code=404)
        output = Format(request.query_params.get("format", "html"))
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


def serve_preview(settings: Settings, week: IsoWeek, *, email: str | None, port: int) -> None:
    """Serve ``create_preview_app`` on 127.0.0.1 until interrupted."""
    import uvicorn

    app = create_preview_app(settings, week, email=email)
    common.echo_err(
        f"previewing {week} on http://127.0.0.1:{port}/ "
        f"(?format=text|eml, ?week=YYYY-Www, ?as=EMAIL); Ctrl-C stops"
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
