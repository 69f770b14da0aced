"""The before/after report as one self-contained HTML file (plotly.js inside, nothing fetched).

Every string that comes from a model, a device or slim.json is escaped: ``html.escape`` in the
markup and in plotly labels (plotly reads a subset of HTML in them), and JSON inside ``<script>``
has ``<``, ``>`` and ``&`` written as ``\\u003c`` and so on so that it cannot close the tag.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Optional

from rebirth.contract.errors import InputError
from rebirth.contract.files import write_text_atomic
from rebirth.contract.paired import PairedComparison
from rebirth.contract.profile import Profile
from rebirth.contract.slim import SlimRecord
from rebirth.reports.charts import CATEGORY_LABEL, figures
from rebirth.reports.compare import Comparison, OpTypeRow, Side, compare
from rebirth.reports.headline import headline_facts, noise_lines, signed_pct
from rebirth.reports.slim_view import quantization_text, step_how, step_savings
from rebirth.reports.units import mib, pct

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "typesetMath": False}


@dataclass(frozen=True)
class Cell:
    """One table cell: the text shown (escaped when written) and the key it sorts by."""

    text: str
    sort: Optional[float] = None
    css: str = ""


@dataclass(frozen=True)
class Column:
    """A table column: its title, how a row becomes a cell, and whether it holds numbers."""

    title: str
    cell: Callable[[Any], Cell]
    numeric: bool = False


def render_html(before: Profile, after: Optional[Profile] = None, slim: Optional[SlimRecord] = None,
                paired: Optional[PairedComparison] = None) -> str:
    """The report of ``before`` (and its comparison with ``after``, measured side by side in ``paired``, and
    slim.json's merges) as HTML."""
    comparison = compare(before, after, slim, paired)
    body = "\n".join([
        _header(comparison),
        _facts(comparison),
        _section("latency", "Latency", _split(_chart("latency"), _latency_table(comparison))),
        _section("categories", "Tensor and non-tensor time", _split(_chart("categories"), _category_table(comparison))),
        _section("layers", "Layers", _chart("layers"), _layer_table(comparison), _merges(comparison)),
        _section("op-types", "Op types", _op_type_table(comparison)),
        _section("memory", "Memory", _split(_chart("memory"), _memory_table(comparison))),
        _section("run", "Device and run settings", _property_table(comparison, DEVICE_ROWS + SETTINGS_ROWS)),
        _section("model", "Models", _property_table(comparison, MODEL_ROWS)),
    ])
    return _page(_title(comparison), body, {"config": PLOTLY_CONFIG, "figures": figures(comparison)})


def write_html(path: str | os.PathLike, before: Profile, after: Optional[Profile] = None,
               slim: Optional[SlimRecord] = None, paired: Optional[PairedComparison] = None) -> Path:
    """Write the report to ``path`` atomically (a temporary file, then a rename) and return the path."""
    path = Path(path)
    write_text_atomic(path, render_html(before, after, slim, paired))
    return path


def write_report(path: str | os.PathLike, before: Profile, after: Optional[Profile] = None,
                 slim: Optional[SlimRecord] = None, paired: Optional[PairedComparison] = None) -> Path:
    """``write_html`` for a path the user named: one that cannot be written is the user's error.

    Raises:
        InputError: the file cannot be written.
    """
    try:
        return write_html(path, before, after, slim, paired)
    except OSError as error:
        raise InputError(f"{path}: cannot write the report ({error.strerror or error})") from None


def script_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` left in it."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --- page ------------------------------------------------------------------------------------

def _page(title: str, body: str, charts: dict) -> str:
    from plotly.offline import get_plotlyjs

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
{body}
</main>
<script type="application/json" id="report-data">{script_json(charts)}</script>
<script>{get_plotlyjs()}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""


def _title(comparison: Comparison) -> str:
    sides = comparison.headline.sides
    return f"rebirth report: {' vs '.join(side.model for side in sides)}"


def _header(comparison: Comparison) -> str:
    sides = comparison.headline.sides
    if comparison.after is None:
        subtitle = _side_text(sides[0])
    else:
        subtitle = f"before: {_side_text(sides[0])}<br>after: {_side_text(sides[1])}"
    return f'<header><h1>rebirth report</h1><p class="sides">{subtitle}</p></header>'


def _side_text(side: Side) -> str:
    return f"<strong>{escape(side.model)}</strong> on {escape(side.device)}, {escape(side.backend)}"


def _facts(comparison: Comparison) -> str:
    cards = "".join(
        f'<div class="fact {fact.tone}" id="fact-{fact.key}"><div class="label">{escape(fact.label)}</div>'
        f'<div class="value">{escape(fact.value)}</div><div class="detail">{escape(fact.detail)}</div></div>'
        for fact in headline_facts(comparison))
    return f'<section class="facts" id="headline">{cards}</section>{_warnings(comparison)}'


def _warnings(comparison: Comparison) -> str:
    """Every profile's warnings under the headline, which they may spoil, each said once."""
    labels = ["before", "after"] if comparison.after is not None else [""]
    items = dict.fromkeys([f"noisy: {line}" for line in noise_lines(comparison)] + [
        f"{f'{label}: ' if label else ''}{warning}"
        for label, profile in zip(labels, comparison.profiles) for warning in profile.warnings])
    if not items:
        return ""
    return '<ul class="warnings" id="warnings">' + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"


def _section(key: str, title: str, *parts: str) -> str:
    return f'<section id="{key}"><h2>{escape(title)}</h2>{"".join(parts)}</section>'


def _split(chart: str, table: str) -> str:
    return f'<div class="split">{chart}{table}</div>'


def _chart(key: str) -> str:
    return f'<div class="chart" id="chart-{key}"></div>'


# --- tables ----------------------------------------------------------------------------------

def _table(columns: Sequence[Column], rows: Iterable[Any], sortable: bool = True, key: str = "") -> str:
    head = "".join(f'<th class="{"num" if c.numeric else ""}">{escape(c.title)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(_td(column.cell(row), column.numeric) for column in columns) + "</tr>"
                   for row in rows)
    attributes = (' class="sortable"' if sortable else "") + (f' id="table-{key}"' if key else "")
    return f'<div class="table"><table{attributes}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _td(cell: Cell, numeric: bool) -> str:
    css = " ".join(filter(None, ("num" if numeric else "", cell.css)))
    value = "" if cell.sort is None else f' data-value="{cell.sort!r}"'
    return f'<td class="{escape(css)}"{value}>{escape(cell.text)}</td>'


def _text(value: Optional[str]) -> Cell:
    return Cell("–" if value is None else str(value))


def _number(value: Optional[float], digits: int = 3) -> Cell:
    return Cell("–", None) if value is None else Cell(f"{value:.{digits}f}", float(value))


def _share(value: Optional[float]) -> Cell:
    return Cell("–", None) if value is None else Cell(pct(value), float(value))


def _delta(value: Optional[float]) -> Cell:
    if value is None:
        return Cell("–", None)
    return Cell(f"{value:+.3f}", float(value), "better" if value < 0 else "worse" if value > 0 else "")


def _latency_table(comparison: Comparison) -> str:
    statistics = [("samples", lambda p: len(p.latency.raw), 0), ("min", lambda p: p.latency.min, 3),
                  ("p10", lambda p: p.latency.p10, 3), ("p50", lambda p: p.latency.p50, 3),
                  ("p90", lambda p: p.latency.p90, 3), ("mean", lambda p: p.latency.mean, 3),
                  ("std", lambda p: p.latency.std, 3), ("trimmed mean", lambda p: p.latency.trimmed_mean, 3),
                  ("CV %", lambda p: p.latency.cv * 100, 1), ("load", lambda p: p.latency.load_ms, 3),
                  ("first run", lambda p: p.latency.first_ms, 3)]
    columns = [Column("ms", lambda row: _text(row[0]))]
    columns += _side_columns(comparison, lambda row, profile: _number(row[1](profile), row[2]), numeric=True)
    return _table(columns, statistics, sortable=False, key="latency")


def _category_table(comparison: Comparison) -> str:
    columns = [Column("category", lambda row: Cell(CATEGORY_LABEL.get(row.category, row.category), css=row.category)),
               Column(_label("ms", comparison, 0), lambda row: _number(row.before_ms), True),
               Column(_label("%", comparison, 0), lambda row: _share(row.before_share), True)]
    if comparison.after is not None:
        columns += [Column("ms after", lambda row: _number(row.after_ms), True),
                    Column("% after", lambda row: _share(row.after_share), True),
                    Column("Δ ms", lambda row: _delta(None if row.after_ms is None else row.after_ms - row.before_ms),
                           True)]
    return _table(columns, comparison.categories, key="categories")


def _op_type_table(comparison: Comparison) -> str:
    columns = [Column("op type", lambda row: _text(row.op_type)),
               Column("category", lambda row: Cell(CATEGORY_LABEL.get(row.category, row.category), css=row.category))]
    columns += _op_type_side(comparison, 0, lambda row: row.before)
    if comparison.after is not None:
        columns += _op_type_side(comparison, 1, lambda row: row.after)
        columns.append(Column("Δ ms", lambda row: _delta(row.delta_ms), True))
    return _table(columns, comparison.op_types, key="op-types")


def _op_type_side(comparison: Comparison, side: int, pick: Callable[[OpTypeRow], Any]) -> list[Column]:
    def read(field: str, make: Callable[[Optional[float]], Cell]) -> Callable[[OpTypeRow], Cell]:
        return lambda row: make(None if pick(row) is None else getattr(pick(row), field))

    return [Column(_label("count", comparison, side), read("count", lambda v: _number(v, 0)), True),
            Column(_label("ms", comparison, side), read("ms", _number), True),
            Column(_label("%", comparison, side), read("share", _share), True),
            Column(_label("cum %", comparison, side), read("cumulative_share", _share), True)]


def _layer_table(comparison: Comparison) -> str:
    columns = [Column("#", lambda row: _number(row[0], 0), True),
               Column("layer", lambda row: Cell(row[1].layer, css="name")),
               Column("module", lambda row: _text(row[1].module_type))]
    if comparison.after is not None or comparison.slim:
        columns.append(Column("slimmer", lambda row: Cell(row[1].status, css=f"status {_css(row[1].status)}")))
    columns.append(Column(_label("ms", comparison, 0), lambda row: _number(row[1].before_ms), True))
    if comparison.after is not None:
        columns += [Column("ms after", lambda row: _number(row[1].after_ms), True),
                    Column("Δ ms", lambda row: _delta(row[1].delta_ms), True)]
    return _table(columns, enumerate(comparison.layers, 1), key="layers")


def _merges(comparison: Comparison) -> str:
    slim = comparison.slim
    if not slim:
        return ""
    columns = [Column("step", lambda m: _text(m.kind)),
               Column("layers", lambda m: Cell(", ".join(m.layers), css="name")),
               Column("how", lambda m: _text(step_how(m))),
               Column("relearned", lambda m: Cell(", ".join(m.learned) or "–", css="name")),
               Column("est. gain ms", lambda m: _number(m.gain_ms), True),
               Column("MACs saved", lambda m: Cell(step_savings(m)[0], m.macs_saved), True),
               Column("weights saved", lambda m: Cell(step_savings(m)[1], m.params_saved), True),
               Column("points lost", lambda m: Cell(step_savings(m)[2], m.points_lost), True)]
    skipped = "".join(f"<li>skipped {escape(skip.kind)} {escape(', '.join(skip.layers))}: {escape(skip.reason)}</li>"
                      for skip in slim.skipped)
    sizes = (f"<p>parameters {_count(slim.params.before)} → {_count(slim.params.after)}; "
             f"MACs {_count(slim.macs.before)} → {_count(slim.macs.after)}</p>")
    quantized = f"<p>{escape(quantization_text(slim.quantization, slim.accuracy))}</p>" if slim.quantization else ""
    return (f"<h3>Steps applied by the slimmer</h3><p>What each step saved, counted on the model "
            "(weights as float32); its time saving is the profile's estimate, the measured speed-up is above; "
            "points lost is the held-out top-1 (or fidelity) right before the step minus right after it.</p>"
            f"{_table(columns, slim.merges, key='merges')}"
            f"{f'<ul class=skipped>{skipped}</ul>' if skipped else ''}{sizes}{quantized}")


def _count(value: Optional[int]) -> str:
    return "?" if value is None else f"{value:,}"


def _memory_table(comparison: Comparison) -> str:
    rows = [("peak RSS of the runner", lambda p: p.memory.peak_rss_bytes),
            ("idle runner RSS (before the model loaded)", lambda p: p.memory.baseline_rss_bytes),
            ("peak RSS above idle", lambda p: p.memory.model_rss_bytes),
            ("weights and constants in the .pte", lambda p: p.memory.constant_bytes),
            ("planned arena (.pte memory plan)", lambda p: p.memory.planned_bytes),
            ("model file", lambda p: p.model.size_bytes)]
    columns = [Column("memory", lambda row: _text(row[0]))]
    columns += _side_columns(comparison, lambda row, profile: _bytes_cell(row[1](profile)), numeric=True)
    if comparison.after is not None:
        columns.append(Column("change", lambda row: _change_cell(*(row[1](p) for p in comparison.profiles)), True))
    return _table(columns, rows, sortable=False, key="memory")


def _bytes_cell(value: Optional[int]) -> Cell:
    return Cell(mib(value), None if value is None else float(value))


def _change_cell(before: Optional[int], after: Optional[int]) -> Cell:
    if before is None or after is None or not before:
        return Cell("–")
    change = after / before - 1
    return Cell(signed_pct(change), change, "better" if change < 0 else "worse" if change > 0 else "")


def _property_table(comparison: Comparison, rows: Sequence[tuple[str, Callable[[Profile], str]]]) -> str:
    columns = [Column("", lambda row: _text(row[0]))]
    columns += _side_columns(comparison, lambda row, profile: Cell(row[1](profile), css="name"))
    return _table(columns, rows, sortable=False)


def _side_columns(comparison: Comparison, cell: Callable[[Any, Profile], Cell], numeric: bool = False) -> list[Column]:
    """One column per profile compared, before first; ``cell(row, profile)`` fills it."""
    return [Column(label, functools.partial(_on_side, cell, profile), numeric)
            for label, profile in zip(_side_labels(comparison), comparison.profiles)]


def _on_side(cell: Callable[[Any, Profile], Cell], profile: Profile, row: Any) -> Cell:
    return cell(row, profile)


def _side_labels(comparison: Comparison) -> list[str]:
    return ["before", "after"] if comparison.after is not None else ["value"]


def _label(title: str, comparison: Comparison, side: int) -> str:
    return title if comparison.after is None else f"{title} {('before', 'after')[side]}"


def _css(status: str) -> str:
    return status.replace(" ", "-")


def _optional(value: Any, unit: str = "") -> str:
    return "unknown" if value is None else f"{value}{unit}"


def _cores(profile: Profile) -> str:
    cores = profile.device.cores
    if not any(core.max_freq_khz or core.cur_freq_khz_start or core.governor for core in cores):
        return f"{len(cores) or 'unknown'} cores; clocks and governors not readable"
    return "; ".join(
        f"cpu{core.index} max {_mhz(core.max_freq_khz)}, {_mhz(core.cur_freq_khz_start)} → "
        f"{_mhz(core.cur_freq_khz_end)}, {core.governor or 'governor unknown'}" for core in profile.device.cores)


def _mhz(khz: Optional[int]) -> str:
    return "?" if khz is None else f"{khz / 1000:.0f} MHz"


def _temperatures(profile: Profile) -> str:
    device = profile.device
    return f"{_optional(device.temperature_c_start, ' °C')} → {_optional(device.temperature_c_end, ' °C')}"


def _throttled(profile: Profile) -> str:
    return {None: "unknown", True: "yes: clocks fell during the run", False: "no"}[profile.device.throttled]


def _accuracy(profile: Profile) -> str:
    accuracy = profile.accuracy
    if accuracy is None:
        return "not measured"
    return f"{accuracy.metric} {accuracy.value:.2f} on {accuracy.dataset}"


DEVICE_ROWS: tuple[tuple[str, Callable[[Profile], str]], ...] = (
    ("device", lambda p: f"{p.device.name} ({p.device.kind})"),
    ("product model", lambda p: _optional(p.device.product_model)),
    ("serial or address", lambda p: _optional(p.device.serial)),
    ("ABI / OS", lambda p: f"{_optional(p.device.abi)} / {_optional(p.device.os)}"),
    ("cores and clocks (start → end)", _cores),
    ("temperature (start → end)", _temperatures),
    ("throttled", _throttled),
    ("runner", lambda p: f"{_optional(p.device.runner)} ({_optional(p.device.runner_kind)})"),
)
SETTINGS_ROWS: tuple[tuple[str, Callable[[Profile], str]], ...] = (
    ("warm-up runs", lambda p: str(p.settings.warmup)),
    ("measured runs", lambda p: str(p.settings.iterations)),
    ("threads", lambda p: _optional(p.settings.threads)),
    ("CPU affinity", lambda p: _optional(p.settings.cpu_affinity)),
    ("cooldown", lambda p: f"{p.settings.cooldown_s:g} s"),
)
MODEL_ROWS: tuple[tuple[str, Callable[[Profile], str]], ...] = (
    ("source", lambda p: p.model.source),
    ("path", lambda p: p.model.path),
    ("backend", lambda p: p.model.backend),
    ("size", lambda p: mib(p.model.size_bytes)),
    ("sha256", lambda p: p.model.sha256),
    ("ETRecord", lambda p: _optional(p.model.etrecord)),
    ("ops (runtime events)", lambda p: str(len(p.ops))),
    ("attributed to layers", lambda p: pct(p.summary.attributed_share)),
    ("latency source", lambda p: p.latency.source),
    ("accuracy", _accuracy),
    ("profiled", lambda p: p.created or "unknown"),
    ("rebirth version", lambda p: p.tool_version or "unknown"),
    ("warnings", lambda p: "; ".join(map(str, p.warnings)) or "none"),
)


CSS = """
:root { --ink: #1f2d3d; --muted: #5f6b7a; --line: #e3e7ec; --good: #1e8449; --bad: #c0392b; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #f4f6f8;
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; }
h2 { font-size: 17px; margin: 0 0 10px; }
h3 { font-size: 15px; margin: 16px 0 8px; }
.sides { color: var(--muted); margin: 0 0 12px; overflow-wrap: anywhere; }
section { background: white; border: 1px solid var(--line); border-radius: 6px; padding: 14px 16px; margin: 14px 0; }
.facts { display: grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap: 10px;
         background: none; border: none; padding: 0; }
.fact { background: white; border: 1px solid var(--line); border-left: 4px solid var(--line); border-radius: 6px;
        padding: 10px 12px; min-width: 0; }
.warnings { background: #fff8e1; border: 1px solid #f0c36d; border-radius: 6px; padding: 8px 12px 8px 28px;
            margin: 10px 0 0; }
.fact.good { border-left-color: var(--good); }
.fact.bad { border-left-color: var(--bad); }
.fact .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.fact .value { font-size: 21px; font-weight: 600; overflow-wrap: anywhere; }
.fact .detail { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
.chart { width: 100%; min-width: 0; min-height: 120px; }
.split { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 16px; align-items: start; }
@media (max-width: 900px) { .split { grid-template-columns: minmax(0, 1fr); } }
.table { max-height: 560px; overflow: auto; border: 1px solid var(--line); border-radius: 4px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { position: sticky; top: 0; background: #eef1f4; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " ⇅"; color: #aab; }
table.sortable th[aria-sort="ascending"]::after { content: " ▲"; color: var(--ink); }
table.sortable th[aria-sort="descending"]::after { content: " ▼"; color: var(--ink); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.name { overflow-wrap: anywhere; font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12px; }
td.better { color: var(--good); }
td.worse { color: var(--bad); }
td.non_tensor { color: var(--bad); }
td.tensor { color: var(--good); }
.status { white-space: nowrap; }
.status.removed { color: var(--bad); font-weight: 600; }
.status.merged { color: #b9770e; font-weight: 600; }
.status.regenerated { color: #7d3c98; font-weight: 600; }
.status.only-after { color: #2e86de; }
.status.only-before { color: var(--muted); }
.skipped { color: var(--muted); }
"""

SCRIPT = """
(function () {
  "use strict";
  const report = JSON.parse(document.getElementById("report-data").textContent);
  const drawn = Object.entries(report.figures).map(function (entry) {
    const figure = entry[1];
    return Plotly.newPlot(document.getElementById("chart-" + entry[0]), figure.data, figure.layout, report.config);
  });
  Promise.all(drawn).then(function () { document.body.dataset.charts = "ready"; });

  function key(row, column, numeric) {
    const cell = row.cells[column];
    const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent;
    return numeric ? (cell.dataset.value === undefined ? NaN : Number(raw)) : raw.toLowerCase();
  }
  function order(a, b, ascending) {
    if (typeof a === "number" && (isNaN(a) || isNaN(b))) { return isNaN(a) - isNaN(b); }
    const sign = ascending ? 1 : -1;
    return typeof a === "number" ? sign * (a - b) : sign * (a < b ? -1 : a > b ? 1 : 0);
  }
  function sortBy(th) {
    const table = th.closest("table");
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    const numeric = th.classList.contains("num");
    table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const rows = Array.from(table.tBodies[0].rows);
    const column = th.cellIndex;
    rows.sort(function (a, b) { return order(key(a, column, numeric), key(b, column, numeric), ascending); });
    table.tBodies[0].append.apply(table.tBodies[0], rows);
  }
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
})();
"""
