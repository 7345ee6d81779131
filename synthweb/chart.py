"""Charts of the share per month with its 95% interval band: PNG, SVG, or a self-contained HTML page.

The HTML page embeds the chart as inline SVG plus the numbers as a table; it loads
nothing from elsewhere (no scripts, no fonts, no images by URL).
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from datetime import date
from pathlib import Path

MAX_SERIES = 8  # more lines than this is unreadable; the biggest groups (by documents) are drawn
FORMATS = {".png": "png", ".svg": "svg", ".html": "html", ".htm": "html"}


class ChartError(ValueError):
    """An output file type we cannot write, or nothing to draw."""


def chart_format(path: str | Path) -> str:
    """ "png", "svg" or "html" from the file extension; ChartError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ChartError(f"chart file {str(path)!r}: use a .png, .svg or .html name")
    return FORMATS[suffix]


def series(rows: list[dict], group_keys: list[str]) -> dict[str, list[dict]]:
    """Rows (with `month` and the group keys) as {label: points sorted by month}; undated rows are left out."""
    out: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if not row.get("month") or row.get("share") is None:
            continue
        label = " · ".join(str(row.get(k)) for k in group_keys) if group_keys else "all"
        year, month = map(int, str(row["month"]).split("-")[:2])
        out[label].append({**row, "x": date(year, month, 1)})
    for points in out.values():
        points.sort(key=lambda p: p["x"])
    ranked = sorted(out, key=lambda label: -sum(p.get("documents", 0) for p in out[label]))
    return {label: out[label] for label in ranked[:MAX_SERIES]}


def _with_gaps(points: list[dict]):
    """x, share, low, high in percent, with a NaN point where months are missing so no line bridges them; a month
    flagged `too_few` (report.TOO_FEW_DOCUMENTS) is NaN too: off the line and its band, drawn hollow instead."""
    nan = float("nan")
    xs, mid, low, high = [], [], [], []
    for i, p in enumerate(points):
        if i and (p["x"].year - points[i - 1]["x"].year) * 12 + p["x"].month - points[i - 1]["x"].month > 1:
            xs.append(points[i - 1]["x"])
            mid.append(nan), low.append(nan), high.append(nan)
        xs.append(p["x"])
        if p.get("too_few"):
            mid.append(nan), low.append(nan), high.append(nan)
            continue
        mid.append(100 * p["share"])
        low.append(100 * (p["ci_low"] if p.get("ci_low") is not None else p["share"]))
        high.append(100 * (p["ci_high"] if p.get("ci_high") is not None else p["share"]))
    return xs, mid, low, high


def _figure(lines: dict[str, list[dict]], title: str):
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for label, points in lines.items():
        xs, mid, low, high = _with_gaps(points)
        (line,) = ax.plot(xs, mid, marker="o", markersize=3, label=label)
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.18, linewidth=0)
        ax.vlines(xs, low, high, color=line.get_color(), alpha=0.35, linewidth=1)  # months standing alone
        for p in points:  # the count on every point: a reader tells noise from trend
            if p.get("too_few"):
                ax.plot([p["x"]], [100 * p["share"]], marker="o", markersize=4, fillstyle="none", color="grey")
            ax.annotate(
                str(p.get("documents", "")),
                (p["x"], 100 * p["share"]),
                textcoords="offset points",
                xytext=(0, 5),
                ha="center",
                fontsize=6,
                color="grey" if p.get("too_few") else line.get_color(),
            )
    ax.set_ylim(0, 100)
    ax.set_ylabel("machine-written share (%), 95% interval")
    ax.set_xlabel("publication month")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(lines) > 1 or next(iter(lines), "all") != "all":
        ax.legend(fontsize=8, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig, plt


def write_chart(path: str | Path, rows: list[dict], group_keys: list[str], title: str) -> Path:
    """Draw the share per month (one line per group) with interval bands into `path`."""
    kind = chart_format(path)
    lines = series(rows, group_keys)
    if not lines:
        raise ChartError("nothing to draw: no scored pages with a publication month")
    fig, plt = _figure(lines, title)
    path = Path(path)
    try:
        if kind == "png":
            fig.savefig(path, format="png")
        elif kind == "svg":
            fig.savefig(path, format="svg")
        else:
            buffer = io.StringIO()
            fig.savefig(buffer, format="svg")
            path.write_text(_html_page(title, _inline_svg(buffer.getvalue()), lines), encoding="utf-8")
    finally:
        plt.close(fig)
    return path


def _inline_svg(document: str) -> str:
    # Drop the XML prolog and DOCTYPE: inline SVG in HTML starts at <svg.
    return document[document.index("<svg") :]


def _html_page(title: str, svg: str, lines: dict[str, list[dict]]) -> str:
    rows = []
    for label, points in lines.items():
        for p in points:
            few = p.get("too_few")
            share = "too few" if few else _pct(p["share"])
            rows.append(
                f"<tr><td>{html.escape(label)}</td><td>{p['x']:%Y-%m}</td><td>{p.get('documents', '')}</td>"
                f"<td>{share}</td><td>{_pct(None if few else p.get('ci_low'))}</td>"
                f"<td>{_pct(None if few else p.get('ci_high'))}</td></tr>"
            )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{svg}"
        "<table><tr><th>series</th><th>month</th><th>documents</th><th>share</th><th>ci_low</th><th>ci_high</th></tr>"
        f"{''.join(rows)}</table></body></html>\n"
    )


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


LAYER_COLOURS = {"human": "#4a7bb7", "uncertain": "#c8c8c8", "synthetic": "#d9534f"}


def write_layers_chart(path: str | Path, summary: list[dict], moves: list[dict], title: str) -> Path:
    """Draw the split of domains between layers per period (stacked bars, the uncertain band between the two
    layers) and the transitions under it, as a self-contained .html page (inline SVG, no dependency)."""
    escape = html.escape
    if chart_format(path) != "html":
        raise ChartError("the layers chart is an .html page: give a FILE ending in .html")
    periods = list(dict.fromkeys(row["period"] for row in summary))
    if not periods:
        raise ChartError("nothing to draw: no domain has scored documents")
    width, height, left, bar = 120 + 90 * len(periods), 320, 60, 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 60}">']
    for tick in (0, 25, 50, 75, 100):
        y = height - tick * (height - 20) / 100
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{tick}%</text>')
    for i, period in enumerate(periods):
        x, y = left + 20 + 90 * i, float(height)
        for layer in ("human", "uncertain", "synthetic"):
            row = next((r for r in summary if r["period"] == period and r["layer"] == layer), None)
            if row is None or not row["domains"]:
                continue
            h = row["domain_share"] * (height - 20)
            y -= h
            tip = f"{period} {layer}: {row['domains']} domains, {row['documents']} documents"
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="{bar}" height="{h:.1f}" fill="{LAYER_COLOURS[layer]}">'
                f"<title>{escape(tip)}</title></rect>"
            )
        parts.append(f'<text x="{x + bar / 2}" y="{height + 16}" text-anchor="middle" font-size="11">'
                     f"{escape(period)}</text>")  # fmt: skip
    legend = "".join(
        f'<rect x="{left + 110 * k}" y="{height + 32}" width="12" height="12" fill="{c}"/>'
        f'<text x="{left + 110 * k + 16}" y="{height + 42}" font-size="11">{name}</text>'
        for k, (name, c) in enumerate(LAYER_COLOURS.items())
    )
    parts.append(legend + "</svg>")
    rows = "".join(
        f"<tr><td>{escape(m['from_period'])} → {escape(m['to_period'])}</td><td>{m['from']} → {m['to']}</td>"
        f"<td>{m['domains']}</td><td>{escape(', '.join(m['examples']))}</td></tr>"
        for m in moves
    )
    table = (
        "<table><tr><th>periods</th><th>layers</th><th>domains</th><th>examples</th></tr>" + rows + "</table>"
        if moves
        else "<p>No domain changed layer between consecutive periods.</p>"
    )
    page = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title></head><body>'
        f"<h1>{escape(title)}</h1><p>Share of domains per layer and period (a domain is synthetic when its share's "
        f"95% interval lies above the cut, human below, uncertain otherwise).</p>{''.join(parts)}"
        f"<h2>Transitions</h2>{table}</body></html>"
    )
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
