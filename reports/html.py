"""The before/after report as one self-contained HTML file (plotly.js inside, nothing fetched).

The page is the Jinja2 template ``templates/report.html.j2``, with autoescape on: every string that comes
from a model, a device or slim.json is escaped by the template engine, and nothing but plotly.js itself is
passed in as markup. The charts' data goes into a ``<script type="application/json">`` through Jinja's
``tojson``, which writes ``<``, ``>``, ``&`` and ``'`` as ``\\u003c`` and so on, so that no name can close the
tag. Plotly reads a subset of HTML in its labels: ``charts`` escapes those for plotly.

This module turns a ``Comparison`` into what the template shows: tables of cells (text, sort key, class).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import jinja2
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from rebirth.contract.cold import PHASES, ColdStart, Distribution
from rebirth.contract.errors import InputError
from rebirth.contract.files import write_text_atomic
from rebirth.contract.paired import PairedComparison
from rebirth.contract.profile import Profile
from rebirth.contract.slim import SlimRecord
from rebirth.contract.timeline import Timeline
from rebirth.reports.charts import CATEGORY_LABEL, figures, timeline_figure
from rebirth.reports.cold_view import heading, spread
from rebirth.reports.compare import Comparison, OpTypeRow, compare
from rebirth.reports.headline import headline_facts, noise_lines, signed_pct
from rebirth.reports.slim_view import evidence_text, quantization_text, step_how, step_savings, technique_lines
from rebirth.reports.units import mib, pct

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "typesetMath": False}
TEMPLATE = "report.html.j2"
JSON_OPTIONS: dict[str, Any] = {"separators": (",", ":"), "allow_nan": False}
"""How the charts' JSON is written into the page: compact, and NaN refused (JavaScript cannot read it)."""


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


@dataclass(frozen=True)
class Table:
    """A table as the template writes it: its columns, its rows of cells, whether a click on a header sorts
    it, and the key of its id (``table-KEY``)."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    sortable: bool = True
    key: str = ""


def render_html(before: Profile, after: Optional[Profile] = None, slim: Optional[SlimRecord] = None,
                paired: Optional[PairedComparison] = None, timelines: Sequence[Timeline] = ()) -> str:
    """The report of ``before`` (and its comparison with ``after``, measured side by side in ``paired``, and
    slim.json's merges) as HTML; with ``timelines`` (``--trace``), a timeline of a few executions of each run."""
    from plotly.offline import get_plotlyjs

    comparison = compare(before, after, slim, paired)
    slimmed = comparison.slim
    quantized = quantization_text(slimmed.quantization, slimmed.accuracy) if slimmed and slimmed.quantization else ""
    return environment().get_template(TEMPLATE).render(
        title=f"rebirth report: {' vs '.join(side.model for side in comparison.headline.sides)}",
        sides=comparison.headline.sides, facts=headline_facts(comparison), warnings=_warnings(comparison),
        tables=_tables(comparison), slim=slimmed, quantized=quantized, cold=_cold_notes(comparison),
        techniques=technique_lines(slimmed) if slimmed else [],
        charts={"config": PLOTLY_CONFIG, "figures": _figures(comparison, timelines)},
        plotly_js=Markup(get_plotlyjs()))  # plotly's own code, not data: the one string not escaped


def _cold_notes(comparison: Comparison) -> list[str]:
    """How each cold start was measured and what its notes say, each line once."""
    labels = ["before: ", "after: "] if comparison.after is not None else [""]
    return list(dict.fromkeys(f"{label}{line}" for label, profile in zip(labels, comparison.profiles)
                              if profile.cold is not None
                              for line in [heading(profile.cold), *map(str, profile.cold.notes)]))


@functools.cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the report's templates (package data of rebirth.reports): autoescape on, an
    undefined name an error, ``tojson`` as ``script_json`` writes, ``thousands`` for counts."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("rebirth.reports", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.policies["json.dumps_kwargs"] = JSON_OPTIONS
    env.filters["thousands"] = _count
    return env


def write_html(path: str | os.PathLike, before: Profile, after: Optional[Profile] = None,
               slim: Optional[SlimRecord] = None, paired: Optional[PairedComparison] = None,
               timelines: Sequence[Timeline] = ()) -> Path:
    """Write the report to ``path`` atomically (a temporary file, then a rename) and return the path."""
    path = Path(path)
    write_text_atomic(path, render_html(before, after, slim, paired, timelines))
    return path


def write_report(path: str | os.PathLike, before: Profile, after: Optional[Profile] = None,
                 slim: Optional[SlimRecord] = None, paired: Optional[PairedComparison] = None,
                 timelines: Sequence[Timeline] = ()) -> Path:
    """``write_html`` for a path the user named: one that cannot be written is the user's error.

    Raises:
        InputError: the file cannot be written.
    """
    try:
        return write_html(path, before, after, slim, paired, timelines)
    except OSError as error:
        raise InputError(f"{path}: cannot write the report ({error.strerror or error})") from None


def script_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element, as the page holds it (Jinja's ``tojson``): no ``<``,
    ``>``, ``&`` or ``'`` left in it."""
    return str(htmlsafe_json_dumps(data, **JSON_OPTIONS))


# --- what the page shows ------------------------------------------------------------------

def _figures(comparison: Comparison, timelines: Sequence[Timeline]) -> dict[str, dict]:
    drawn = figures(comparison)
    if any(timeline.detailed for timeline in timelines):
        drawn["timeline"] = timeline_figure(timelines)
    return drawn


def _warnings(comparison: Comparison) -> list[str]:
    """Every profile's warnings under the headline, which they may spoil, each said once."""
    labels = ["before", "after"] if comparison.after is not None else [""]
    return list(dict.fromkeys([f"noisy: {line}" for line in noise_lines(comparison)] + [
        f"{f'{label}: ' if label else ''}{warning}"
        for label, profile in zip(labels, comparison.profiles) for warning in profile.warnings]))


def _tables(comparison: Comparison) -> dict[str, Table]:
    tables = {"latency": _latency_table(comparison), "categories": _category_table(comparison),
              "layers": _layer_table(comparison), "op_types": _op_type_table(comparison),
              "memory": _memory_table(comparison),
              "run": _property_table(comparison, DEVICE_ROWS + SETTINGS_ROWS),
              "model": _property_table(comparison, MODEL_ROWS)}
    if comparison.slim:
        tables["merges"] = _merges_table(comparison.slim)
    if any(profile.cold is not None for profile in comparison.profiles):
        tables["cold"] = _cold_table(comparison)
    return tables


# --- tables ----------------------------------------------------------------------------------

def _table(columns: Sequence[Column], rows: Iterable[Any], sortable: bool = True, key: str = "") -> Table:
    return Table(tuple(columns), tuple(tuple(_cell(column, row) for column in columns) for row in rows), sortable, key)


def _cell(column: Column, row: Any) -> Cell:
    """The column's cell of ``row``, its class saying ``num`` in a column of numbers (right-aligned)."""
    cell = column.cell(row)
    return replace(cell, css=" ".join(filter(None, ("num" if column.numeric else "", cell.css))))


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


def _latency_table(comparison: Comparison) -> Table:
    statistics = [("samples", lambda p: len(p.latency.raw), 0), ("min", lambda p: p.latency.min, 3),
                  ("p10", lambda p: p.latency.p10, 3), ("p50", lambda p: p.latency.p50, 3),
                  ("p90", lambda p: p.latency.p90, 3), ("mean", lambda p: p.latency.mean, 3),
                  ("std", lambda p: p.latency.std, 3), ("trimmed mean", lambda p: p.latency.trimmed_mean, 3),
                  ("CV %", lambda p: p.latency.cv * 100, 1), ("load", lambda p: p.latency.load_ms, 3),
                  ("first run", lambda p: p.latency.first_ms, 3)]
    columns = [Column("ms", lambda row: _text(row[0]))]
    columns += _side_columns(comparison, lambda row, profile: _number(row[1](profile), row[2]), numeric=True)
    return _table(columns, statistics, sortable=False, key="latency")


def _cold_table(comparison: Comparison) -> Table:
    """The cold start's phases and warm-up curve, one column per profile: median [95% interval] in ms."""
    longest = max(len(profile.cold.curve) for profile in comparison.profiles if profile.cold is not None)
    rows: list[tuple[str, Callable[[ColdStart], Optional[Distribution]]]] = [
        (label, functools.partial(_cold_phase, index)) for index, label in enumerate(PHASES)]
    rows += [(f"execution {index + 1}", functools.partial(_cold_point, index)) for index in range(1, longest)]
    columns = [Column("ms, median [95% interval]", lambda row: _text(row[0]))]
    columns += _side_columns(comparison, lambda row, profile: _cold_cell(profile.cold, row[1]), numeric=True)
    return _table(columns, rows, sortable=False, key="cold")


def _cold_phase(index: int, cold: ColdStart) -> Optional[Distribution]:
    return cold.phases()[index][1]


def _cold_point(index: int, cold: ColdStart) -> Optional[Distribution]:
    return cold.curve[index] if index < len(cold.curve) else None


def _cold_cell(cold: Optional[ColdStart], pick: Callable[[ColdStart], Optional[Distribution]]) -> Cell:
    value = pick(cold) if cold is not None else None
    return Cell(spread(value), None if value is None else value.median)


def _category_table(comparison: Comparison) -> Table:
    columns = [Column("category", lambda row: Cell(CATEGORY_LABEL.get(row.category, row.category), css=row.category)),
               Column(_label("ms", comparison, 0), lambda row: _number(row.before_ms), True),
               Column(_label("%", comparison, 0), lambda row: _share(row.before_share), True)]
    if comparison.after is not None:
        columns += [Column("ms after", lambda row: _number(row.after_ms), True),
                    Column("% after", lambda row: _share(row.after_share), True),
                    Column("Δ ms", lambda row: _delta(None if row.after_ms is None else row.after_ms - row.before_ms),
                           True)]
    return _table(columns, comparison.categories, key="categories")


def _op_type_table(comparison: Comparison) -> Table:
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


def _layer_table(comparison: Comparison) -> Table:
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


def _merges_table(slim: SlimRecord) -> Table:
    columns = [Column("step", lambda m: _text(m.kind)),
               Column("layers", lambda m: Cell(", ".join(m.layers), css="name")),
               Column("how", lambda m: _text(step_how(m))),
               Column("relearned", lambda m: Cell(", ".join(m.learned) or "–", css="name")),
               Column("est. gain ms", lambda m: _number(m.gain_ms), True),
               Column("MACs saved", lambda m: Cell(step_savings(m)[0], m.macs_saved), True),
               Column("weights saved", lambda m: Cell(step_savings(m)[1], m.params_saved), True),
               Column("points lost", lambda m: Cell(step_savings(m)[2], m.points_lost), True),
               Column("vs original (95% CI)", lambda m: Cell(evidence_text(m.evidence),
                                                            m.evidence.lost if m.evidence else None), True)]
    return _table(columns, slim.merges, key="merges")


def _count(value: Optional[int]) -> str:
    return "?" if value is None else f"{value:,}"


def _memory_table(comparison: Comparison) -> Table:
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


def _property_table(comparison: Comparison, rows: Sequence[tuple[str, Callable[[Profile], str]]]) -> Table:
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
