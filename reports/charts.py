"""The report's charts as plain plotly figure dicts (no plotly import: plotly.js draws them in the page).

Plotly reads a subset of HTML in labels and hover text (``<b>``, ``<br>``, ``<a href>``), so every
string that comes from a model is passed through ``html.escape`` and shows as the literal text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any, Optional

from rebirth.contract.profile import Profile
from rebirth.contract.timeline import Execution, Timeline
from rebirth.reports.compare import Comparison, LayerRow
from rebirth.reports.units import mib, pct

CHARTS = ("latency", "categories", "layers", "memory")
TOP_LAYERS = 20
BEFORE_COLOR, AFTER_COLOR = "#8395a7", "#2e86de"
CATEGORY_COLOR = {"tensor": "#27ae60", "non_tensor": "#e74c3c", "framework": "#95a5a6"}
CATEGORY_LABEL = {"tensor": "tensor", "non_tensor": "non-tensor", "framework": "framework"}
FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12}
MIB = float(1 << 20)


def figures(comparison: Comparison) -> dict[str, dict]:
    """Each chart of ``CHARTS`` as ``{"data": [...], "layout": {...}}``."""
    return {"latency": latency_figure(comparison), "categories": category_figure(comparison),
            "layers": layer_figure(comparison), "memory": memory_figure(comparison)}


def latency_figure(comparison: Comparison) -> dict:
    """Every raw latency sample of each side over its box plot."""
    data = [{"type": "box", "orientation": "h", "name": label, "x": list(profile.latency.raw),
             "boxpoints": "all", "jitter": 0.5, "pointpos": 0, "boxmean": True,
             "marker": {"color": color, "size": 4, "opacity": 0.6}, "line": {"color": color},
             "hoveron": "points", "hovertemplate": "%{x:.3f} ms<extra>%{fullData.name}</extra>"}
            for label, color, profile in _sides(comparison)]
    return {"data": data, "layout": _layout(110 + 70 * len(data), showlegend=False,
                                            xaxis={"title": {"text": "latency of one inference (ms)"},
                                                   "rangemode": "tozero", "automargin": True},
                                            yaxis={"automargin": True, "autorange": "reversed"})}


def category_figure(comparison: Comparison) -> dict:
    """Tensor, non-tensor and framework time stacked, one bar per side."""
    labels = [label for label, _, _ in _sides(comparison)]
    data = []
    for row in comparison.categories:
        times = [row.before_ms, row.after_ms][:len(labels)]
        shares = [row.before_share, row.after_share][:len(labels)]
        data.append({"type": "bar", "orientation": "h", "name": CATEGORY_LABEL.get(row.category, row.category),
                     "y": labels, "x": times, "text": [pct(share) for share in shares],
                     "textposition": "inside", "insidetextanchor": "middle",
                     "marker": {"color": CATEGORY_COLOR.get(row.category, "#888")},
                     "hovertemplate": "%{y}: %{x:.3f} ms (%{text})<extra>%{fullData.name}</extra>"})
    return {"data": data, "layout": _layout(110 + 60 * len(labels), barmode="stack",
                                            xaxis={"title": {"text": "summed p50 op time (ms)"}, "automargin": True},
                                            yaxis={"automargin": True, "autorange": "reversed"})}


def layer_figure(comparison: Comparison, top: int = TOP_LAYERS) -> dict:
    """The ``top`` slowest layers in run order, a bar per side.

    Bars sit at positions 0..n-1 with the (escaped, shortened) names as tick labels, so that two
    names never collapse into one category and no name is read as a number.
    """
    rows = top_layers(comparison.layers, top)
    positions = list(range(len(rows)))
    hover = [[escape(row.layer), escape(row.module_type or "?"), escape(row.status)] for row in rows]
    data = [{"type": "bar", "orientation": "h", "name": label, "y": positions,
             "x": [row.before_ms if index == 0 else row.after_ms for row in rows],
             "marker": {"color": color}, "customdata": hover,
             "hovertemplate": "%{customdata[0]} (%{customdata[1]}, %{customdata[2]})<br>%{x:.3f} ms<extra>"
                              "%{fullData.name}</extra>"}
            for index, (label, color, _) in enumerate(_sides(comparison))]
    axis = {"tickmode": "array", "tickvals": positions, "ticktext": [escape(_short(row.layer)) for row in rows],
            "autorange": "reversed", "automargin": True}
    per_row = 10 * len(data) + 8
    return {"data": data, "layout": _layout(120 + per_row * max(len(rows), 1), barmode="group", bargap=0.25,
                                            xaxis={"title": {"text": "p50 time in the layer (ms)"},
                                                   "automargin": True, "side": "top"},
                                            yaxis=axis)}


def top_layers(layers: Sequence[LayerRow], count: int) -> list[LayerRow]:
    """The ``count`` slowest layers on either side, in run order."""
    slowest = sorted(layers, key=lambda row: -max(row.before_ms or 0.0, row.after_ms or 0.0))[:count]
    chosen = {id(row) for row in slowest}
    return [row for row in layers if id(row) in chosen]


def memory_figure(comparison: Comparison) -> dict:
    """Peak RSS, idle RSS, the .pte's weights and its planned arena, in MiB, a bar per side."""
    kinds: list[tuple[str, Callable[[Profile], Optional[int]]]] = [
        ("peak RSS", lambda p: p.memory.peak_rss_bytes), ("idle RSS", lambda p: p.memory.baseline_rss_bytes),
        ("weights (.pte)", lambda p: p.memory.constant_bytes), ("planned arena", lambda p: p.memory.planned_bytes)]
    data = [{"type": "bar", "name": label, "x": [kind for kind, _ in kinds],
             "y": [_mib_or_none(read(profile)) for _, read in kinds],
             "text": [mib(read(profile)) for _, read in kinds], "textposition": "outside",
             "marker": {"color": color}, "hovertemplate": "%{x}: %{text}<extra>%{fullData.name}</extra>"}
            for label, color, profile in _sides(comparison)]
    return {"data": data, "layout": _layout(320, barmode="group", showlegend=comparison.after is not None,
                                            yaxis={"title": {"text": "MiB"}, "automargin": True},
                                            xaxis={"automargin": True})}


def _sides(comparison: Comparison) -> list[tuple[str, str, Profile]]:
    labels = ["before", "after"] if comparison.after is not None else ["profile"]
    return list(zip(labels, (BEFORE_COLOR, AFTER_COLOR), comparison.profiles))


def _layout(height: int, **extra: Any) -> dict:
    return {"height": height, "font": FONT, "margin": {"l": 10, "r": 20, "t": 30, "b": 40},
            "paper_bgcolor": "white", "plot_bgcolor": "#fafbfc",
            "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0}, **extra}


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _mib_or_none(value: Optional[int]) -> Optional[float]:
    return None if value is None else value / MIB


def timeline_figure(timelines: Sequence[Timeline]) -> dict:
    """A compact timeline: for each run, its first, median and slowest timed executions that kept their ops,
    one row each, every call and op a bar at its time from the execution's start, coloured by category."""
    rows = [(f"{escape(_short(timeline.label, 30))} · {which} #{execution.index}", execution)
            for timeline in timelines for which, execution in _shown_executions(timeline)]
    data = []
    for category in ("framework", "tensor", "non_tensor"):
        bars = [(label, s, execution.start_ns) for label, execution in rows for s in execution.slices
                if s.category == category]
        data.append({"type": "bar", "orientation": "h", "name": CATEGORY_LABEL[category],
                     "y": [label for label, _, _ in bars], "base": [(s.start_ns - zero) / 1e6 for _, s, zero in bars],
                     "x": [(s.end_ns - s.start_ns) / 1e6 for _, s, _ in bars],
                     "customdata": [escape(s.name) for _, s, _ in bars],
                     "opacity": 0.45 if category == "framework" else 0.95,
                     "marker": {"color": CATEGORY_COLOR[category], "line": {"width": 0}},
                     "hovertemplate": "%{customdata}: %{x:.3f} ms from %{base:.3f} ms<extra>%{fullData.name}</extra>"})
    return {"data": data, "layout": _layout(90 + 34 * max(len(rows), 1), barmode="overlay", bargap=0.3,
                                            xaxis={"title": {"text": "time from the execution's start (ms)"},
                                                   "rangemode": "tozero", "automargin": True},
                                            yaxis={"automargin": True, "autorange": "reversed",
                                                   "type": "category"})}


def _shown_executions(timeline: Timeline) -> list[tuple[str, Execution]]:
    """The first, median and slowest timed executions that kept their ops (each once)."""
    kept = [e for e in timeline.executions if e.slices and not e.warmup] or [e for e in timeline.executions
                                                                            if e.slices]
    if not kept:
        return []
    by_time = sorted(kept, key=lambda e: e.ms)
    chosen = {"first": kept[0], "median": by_time[len(by_time) // 2], "slowest": by_time[-1]}
    shown: dict[int, tuple[str, Execution]] = {}
    for which, execution in chosen.items():
        shown.setdefault(execution.index, (which, execution))
    return list(shown.values())
