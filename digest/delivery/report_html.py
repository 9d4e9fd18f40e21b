"""The edition report as one self-contained HTML page with inline SVG charts (``--html FILE``
and ``/reports/{edition}``).

Charts are drawn by pygal into inline SVG: no script, no external font or stylesheet (pygal's
inline configuration script is removed; the page needs none). Each chart is a ``<figure>``
whose caption is its title; the SVG is an image labelled by that caption and described by the
table that follows it, which holds the same figures as text (the chart's text alternative).
Opens get a table of their own under a warning that they are unreliable, and no chart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import markupsafe
import pygal
from pygal.style import Style

from digest.delivery.report import OPENS_NOTE, OPENS_OFF_NOTE, EditionReport, OpenFigures

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL | re.IGNORECASE)
_STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1c1917",
    foreground_strong="#1c1917",
    foreground_subtle="#57534e",
    colors=("#1d4ed8", "#b45309", "#15803d", "#7f1d1d"),
    font_family="system-ui, sans-serif",
    label_font_size=14,
    major_label_font_size=14,
    legend_font_size=14,
    title_font_size=16,
    value_font_size=12,
)
PAGE_CSS = """
body{font-family:system-ui,sans-serif;color:#1c1917;background:#fafaf9;margin:0 auto;
max-width:960px;padding:24px}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem}
table{border-collapse:collapse;margin:8px 0 16px}
th,td{border:1px solid #d6d3d1;padding:4px 8px;text-align:left}
th{background:#f5f5f4}
figure{margin:16px 0;background:#fff;border:1px solid #e7e5e4;padding:12px}
figcaption{font-weight:600;margin-bottom:8px}
svg{max-width:100%;height:auto}
.note{color:#57534e}
"""


def _e(value: object) -> str:
    return str(markupsafe.escape(str(value)))


def _table(caption: str, head: Sequence[str], rows: Sequence[Sequence[object]], ident: str) -> str:
    header = "".join(f'<th scope="col">{_e(h)}</th>' for h in head)
    body = "".join(
        "<tr>"
        + f'<th scope="row">{_e(row[0])}</th>'
        + "".join(f"<td>{_e(cell)}</td>" for cell in row[1:])
        + "</tr>"
        for row in rows
    )
    return (
        f'<table id="{ident}"><caption class="note">{_e(caption)}</caption>'
        f"<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"
    )


def _svg(chart: pygal.graph.graph.Graph, ident: str) -> str:
    svg = _SCRIPT.sub("", chart.render(is_unicode=True))
    # The image is labelled by the figure's caption and described by the data table.
    return svg.replace(
        "<svg ",
        f'<svg role="img" aria-labelledby="{ident}-title" aria-describedby="{ident}-data" ',
        1,
    )


def _figure(
    ident: str,
    title: str,
    chart: pygal.graph.graph.Graph,
    head: Sequence[str],
    rows: Sequence[Sequence[object]],
) -> str:
    return (
        f'<figure aria-labelledby="{ident}-title">'
        f'<figcaption id="{ident}-title">{_e(title)}</figcaption>'
        f"{_svg(chart, ident)}"
        f"{_table(f'The figures of the chart: {title}', head, rows, f'{ident}-data')}"
        "</figure>"
    )


def _chart(kind: type[pygal.graph.graph.Graph], labels: Sequence[str]) -> pygal.graph.graph.Graph:
    chart = kind(
        js=[],
        disable_xml_declaration=True,
        style=_STYLE,
        width=900,
        height=360,
        show_legend=True,
        legend_at_bottom=True,
        print_values=False,
        x_label_rotation=20 if len(labels) > 6 else 0,
    )
    chart.x_labels = list(labels)
    return chart


def _opens(opens: OpenFigures | None) -> str:
    """The opens section: its figures under the warning that they are unreliable."""
    if opens is None:
        return f'<h2>Opens</h2><p class="note">{_e(OPENS_OFF_NOTE)}</p>'
    rows = [
        ("Pixel fetches counted", opens.counted),
        ("Unique openers", opens.openers),
        (f"Open rate (unique openers of messages {opens.base})", f"{opens.rate:.1%}"),
        ("Pixel fetches, all", opens.hits),
        *((f"… removed by rule: {reason}", hits) for reason, hits in opens.removed.items()),
    ]
    return (
        "<h2>Opens (unreliable)</h2>"
        f'<p class="note"><strong>Not reliable.</strong> {_e(OPENS_NOTE)}</p>'
        + _table(
            "Opens, as the open pixel saw them (unreliable)", ["Figure", "Value"], rows, "opens"
        )
    )


def report_html(report: EditionReport, site_name: str = "") -> str:
    """The whole page."""
    title = f"Edition {report.edition_id} ({report.week}): what readers followed"
    hook = report.webhook
    summary = _table(
        "The edition at a glance",
        ["Figure", "Value"],
        [
            ("Sent", report.sent),
            ("Delivered", hook.get("delivered", 0)),
            ("Bounced", hook.get("bounced", 0)),
            ("Complained", hook.get("complained", 0)),
            ("Unsubscribes", report.unsubscribes),
            ("Votes", f"{report.votes} from {report.voters} readers"),
            ("Human clicks", report.human),
            ("Unique human clickers", report.clickers),
            ("Click-through rate", f"{report.ctr:.1%}"),
            ("Automated hits removed", report.automated),
            *((f"… by rule: {reason}", hits) for reason, hits in report.removed.items()),
        ],
        "summary",
    )
    parts = [
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{PAGE_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="note">{_e(site_name)} · {_e(report.subject)}</p>',
        summary,
        _opens(report.opens),
        "<h2>Clicks per comparison</h2>",
    ]
    for line in report.comparisons:
        labels = ["Read the full comparison", *(tool.name for tool in line.tools)]
        figures = [line.link, *(tool.clicks for tool in line.tools)]
        chart = _chart(pygal.Bar, labels)
        chart.add("Human clicks", [f.human for f in figures])
        chart.add("Automated hits removed", [sum(f.automated.values()) for f in figures])
        rows = [
            (label, f.human, f.clickers, f"{f.ctr:.1%}", sum(f.automated.values()))
            for label, f in zip(labels, figures, strict=True)
        ]
        parts.append(
            _figure(
                f"c{line.position}",
                f"{line.title}: clicks per link",
                chart,
                ["Link", "Human clicks", "Unique clickers", "CTR", "Automated removed"],
                rows,
            )
        )
    trend = _chart(pygal.Line, [point.week for point in report.trend])
    trend.add("Human clicks", [point.human_clicks for point in report.trend])
    trend.add("Unique clickers", [point.clickers for point in report.trend])
    parts.append("<h2>Trend</h2>")
    parts.append(
        _figure(
            "trend",
            f"Human clicks over the last {len(report.trend)} editions",
            trend,
            ["Edition", "Sent", "Human clicks", "Unique clickers", "CTR"],
            [(p.week, p.sent, p.human_clicks, p.clickers, f"{p.ctr:.1%}") for p in report.trend],
        )
    )
    hours = _chart(pygal.Line, [f"{hour:02d}" for hour in range(24)])
    hours.add("Human clicks", list(report.hours))
    parts.append("<h2>When readers click</h2>")
    parts.append(
        _figure(
            "hours",
            "Human clicks by hour of day (UTC)",
            hours,
            ["Hour (UTC)", "Human clicks"],
            [(f"{hour:02d}:00", count) for hour, count in enumerate(report.hours)],
        )
    )
    parts.append("</main></body></html>")
    return "".join(parts)
