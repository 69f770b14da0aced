"""The history of the result store (``rebirth history``): one self-contained HTML page with a panel per device
fingerprint and model (p50 with its interval band over time, peak RSS below, baselines and noisy runs marked,
change points drawn with their size and first commit), the same as Markdown, and as lines for the terminal.

The page is ``templates/history.html.j2`` with autoescape on, its charts' data written through ``tojson`` as the
report's are (``reports.html``); every string a store holds (device, model, commit, flags, baseline names) that
goes into a plotly label or hover is escaped with ``html.escape``, since plotly reads a subset of HTML there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any, Optional

from markupsafe import Markup

from rebirth.contract.errors import InputError
from rebirth.contract.files import write_text_atomic
from rebirth.contract.history import DRIFT, STEP, History, HistoryChange, HistorySeries
from rebirth.reports.charts import FONT, MIB
from rebirth.reports.html import PLOTLY_CONFIG, environment
from rebirth.reports.markdown import _code, _plain, _table
from rebirth.reports.units import mib, ms

TEMPLATE = "history.html.j2"
LINE, BAND, NOISY, BASELINE, RSS = "#2e86de", "rgba(46,134,222,0.18)", "#c0392b", "#b9770e", "#7d3c98"
STEP_COLOR, DRIFT_COLOR = "#c0392b", "rgba(231,76,60,0.10)"


PAGE_RUNS = 250
"""Runs of each series a page draws by default (the latest): a farm's years stay one page of a few MB."""


def render_history(history: History, last: Optional[int] = PAGE_RUNS) -> str:
    """The history page as HTML, each panel drawing the latest ``last`` runs of its series (None: every run);
    the change points are found over every run and all listed."""
    from plotly.offline import get_plotlyjs

    panels = [{"key": f"s{index}", "title": _title(series), "meta": _meta(series, last),
               "changes": [change.describe() for change in series.changes]}
              for index, series in enumerate(history.series)]
    figures = {f"s{index}": series_figure(series, last) for index, series in enumerate(history.series)}
    return environment().get_template(TEMPLATE).render(
        title="rebirth history", store=history.store, filters=_filters(history), panels=panels,
        counts=counts_line(history), charts={"config": PLOTLY_CONFIG, "figures": figures},
        plotly_js=Markup(get_plotlyjs()))  # plotly's own code, not data: the one string not escaped


def write_history(path: str | os.PathLike, history: History, last: Optional[int] = PAGE_RUNS) -> Path:
    """Write the page to ``path`` atomically (``render_history``).

    Raises:
        InputError: the file cannot be written.
    """
    path = Path(path)
    try:
        write_text_atomic(path, render_history(history, last))
    except OSError as error:
        raise InputError(f"{path}: cannot write the history ({error.strerror or error})") from None
    return path


def series_figure(series: HistorySeries, last: Optional[int] = None) -> dict:
    """p50 (with its band) and peak RSS over the runs' times (the latest ``last`` runs, if given); flagged and
    baseline runs marked; change points as lines (steps) and shaded spans (drifts) with their size."""
    first = max(0, len(series.points) - last) if last else 0
    points = series.points[first:]
    times = [_when(point.time) for point in points]
    several = len(set(series.devices)) > 1
    hover = [[escape((point.commit or "no commit")[:10]), point.number,
              f"{_short(point.p50_low_ms)}-{_short(point.p50_high_ms)}"]
             + ([escape(point.device)] if several else []) for point in points]
    template = ("run %{customdata[1]}" + (" on %{customdata[3]}" if several else "") + ", commit %{customdata[0]}"
                "<br>%{x}<br>p50 %{y:.3f} ms (95% interval %{customdata[2]} ms)<extra></extra>")
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "x": times, "y": [_short(point.p50_high_ms) for point in points],
         "line": {"width": 0}, "hoverinfo": "skip", "showlegend": False, "name": "interval"},
        {"type": "scatter", "mode": "lines", "x": times, "y": [_short(point.p50_low_ms) for point in points],
         "fill": "tonexty", "fillcolor": BAND, "line": {"width": 0}, "hoverinfo": "skip",
         "name": "p50 95% interval"},
        {"type": "scatter", "mode": "lines+markers", "x": times, "y": [_short(point.p50_ms) for point in points],
         "name": "p50", "line": {"color": LINE}, "marker": {"size": 5 if len(points) <= 100 else 3},
         "customdata": hover, "hovertemplate": template},
    ]
    flagged = [index for index, point in enumerate(points) if point.flags]
    if flagged:
        data.append(_marks("flagged noisy", flagged, points, "flags", lambda point: "; ".join(point.flags),
                           {"symbol": "x", "size": 10, "color": NOISY}))
    based = [index for index, point in enumerate(points) if point.baselines]
    if based:
        data.append(_marks("baseline", based, points, "baselines", lambda point: ", ".join(point.baselines),
                           {"symbol": "star", "size": 13, "color": BASELINE, "line": {"width": 1, "color": "white"}}))
    rss = [None if point.peak_rss_bytes is None else _short(point.peak_rss_bytes / MIB) for point in points]
    if any(value is not None for value in rss):
        data.append({"type": "scatter", "mode": "lines+markers", "x": times, "y": rss, "yaxis": "y2",
                     "name": "peak RSS", "line": {"color": RSS}, "marker": {"size": 4 if len(points) <= 100 else 2},
                     "hovertemplate": "peak RSS %{y:.1f} MiB<br>%{x}<extra></extra>"})
    shapes, notes = _change_marks(series, first)
    layout = {"height": 420, "font": FONT, "margin": {"l": 10, "r": 20, "t": 30, "b": 40},
              "paper_bgcolor": "white", "plot_bgcolor": "#fafbfc", "hovermode": "closest",
              "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
              "xaxis": {"type": "date", "automargin": True},
              "yaxis": {"title": {"text": "p50 (ms)"}, "domain": [0.36, 1], "automargin": True},
              "yaxis2": {"title": {"text": "peak RSS (MiB)"}, "domain": [0, 0.24], "automargin": True,
                         "anchor": "x"},
              "shapes": shapes, "annotations": notes}
    return {"data": data, "layout": layout}


def _when(time: str) -> str:
    """An ISO 8601 time as plotly's date axis reads it, without the UTC offset rebirth always stores."""
    return time.replace("T", " ").removesuffix("+00:00")


def _short(value: float) -> float:
    """``value`` to 5 significant digits: what a chart shows, in a third of the bytes."""
    return float(f"{value:.5g}")


def _marks(name: str, indices: list[int], points, what: str, text: Callable[[Any], str], marker: dict) -> dict:
    return {"type": "scatter", "mode": "markers", "name": name, "x": [_when(points[i].time) for i in indices],
            "y": [_short(points[i].p50_ms) for i in indices], "marker": marker,
            "customdata": [[escape((points[i].commit or "no commit")[:10]), points[i].number, escape(text(points[i]))]
                           for i in indices],
            "hovertemplate": f"run %{{customdata[1]}}, commit %{{customdata[0]}}<br>%{{x}}<br>p50 %{{y:.3f}} ms<br>"
                             f"{what}: %{{customdata[2]}}<extra></extra>"}


def _change_marks(series: HistorySeries, first: int = 0) -> tuple[list[dict], list[dict]]:
    """The change points that end in the runs drawn (from run index ``first``), as shapes and annotations."""
    shapes, notes = [], []
    for change in series.changes:
        if change.end < first:
            continue
        start = series.points[max(change.start, first)]
        text = escape(_short_change(change))
        if change.kind == STEP:
            shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": _when(start.time),
                           "x1": _when(start.time), "y0": 0.36, "y1": 1,
                           "line": {"color": STEP_COLOR, "dash": "dash", "width": 2}})
        else:
            end = series.points[change.end]
            shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": _when(start.time),
                           "x1": _when(end.time), "y0": 0.36, "y1": 1, "fillcolor": DRIFT_COLOR, "line": {"width": 0},
                           "layer": "below"})
        notes.append({"x": _when(start.time), "xref": "x", "y": 1, "yref": "paper", "yanchor": "bottom", "text": text,
                      "showarrow": False, "font": {"color": STEP_COLOR if change.kind == STEP else "#922b21"},
                      "xanchor": "left"})
    return shapes, notes


def _short_change(change: HistoryChange) -> str:
    """``+5.1% step at abc1234`` / ``+9.8% drift from abc1234``: an annotation's text."""
    commit = (change.commit or "no commit")[:7]
    return f"{100 * change.size:+.1f}% {change.kind} {'at' if change.kind == STEP else 'from'} {commit}"


def _title(series: HistorySeries) -> str:
    return f"{series.model_key} on {', '.join(series.devices)}"


def _meta(series: HistorySeries, last: Optional[int] = None) -> str:
    runs = len(series.points)
    flagged = sum(1 for point in series.points if point.flags)
    noise = f"; run-to-run noise {100 * series.noise:.1f}%" if series.noise is not None else ""
    drawn = f" (the latest {last} drawn: --page-runs)" if last and runs > last else ""
    return (f"fingerprint {series.fingerprint}; {runs} run{'s' if runs != 1 else ''}{drawn}"
            + (f", {flagged} flagged noisy (left out of the change points)" if flagged else "") + noise)


def _filters(history: History) -> str:
    said = [f"device {history.device}" if history.device else "", f"model {history.model}" if history.model else ""]
    return ", ".join(part for part in said if part)


def counts_line(history: History) -> str:
    """``2 series, 1 step, 1 drift``."""
    steps = sum(1 for series in history.series for change in series.changes if change.kind == STEP)
    drifts = sum(1 for series in history.series for change in series.changes if change.kind == DRIFT)
    count = len(history.series)
    return (f"{count} series, {steps} step{'s' if steps != 1 else ''}, {drifts} drift{'s' if drifts != 1 else ''}")


HISTORY_HEADERS = ("device", "model", "runs", "latest p50", "changes")


def history_markdown(history: History) -> str:
    """The history as Markdown: the counts first, one row per series, then one line per change point."""
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for series in history.series:
        latest = series.points[-1]
        rows.append((", ".join(series.devices), series.model_key, str(len(series.points)), ms(latest.p50_ms),
                     str(len(series.changes))))
        notes += [f"- `{_code(', '.join(series.devices))}` `{_code(series.model_key)}`: {_plain(change.describe())}"
                  for change in series.changes]
    lines = [f"**rebirth history: {counts_line(history)}**", "", *_table(rows, HISTORY_HEADERS)]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def write_history_summary(path: str | os.PathLike, history: History) -> None:
    """Write ``history_markdown`` to ``path`` atomically.

    Raises:
        InputError: the file cannot be written.
    """
    try:
        write_text_atomic(Path(path), history_markdown(history))
    except OSError as error:
        raise InputError(f"{path}: cannot write ({error.strerror or error})") from None


def history_lines(history: History, most: int = 20) -> list[str]:
    """The history in plain lines for the terminal or a CI log: the counts, then every series with a change point
    (its latest p50 and RSS, and each change), then the others, or only how many there are when they are over
    ``most``."""
    lines = [f"{history.store}: {counts_line(history)}"]
    changed = [series for series in history.series if series.changes]
    quiet = [series for series in history.series if not series.changes]
    for series in changed + (quiet if len(quiet) <= most else []):
        latest = series.points[-1]
        memory = mib(latest.peak_rss_bytes) if latest.peak_rss_bytes else "-"
        runs = len(series.points)
        lines.append(f"{_title(series)}: {runs} run{'s' if runs != 1 else ''}, latest p50 {ms(latest.p50_ms)}, "
                     f"peak RSS {memory}")
        lines += [f"  {change.describe()}" for change in series.changes]
    if len(quiet) > most:
        lines.append(f"{len(quiet)} more series without a change point (-o or --summary lists them)")
    return lines
