"""A Profile in the terminal with rich: a summary, the op types, the top layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from rich.console import Console
from rich.markup import escape

from rebirth.contract.paired import PairedComparison
from rebirth.contract.profile import OpTypeSummary, Profile
from rebirth.contract.slim import SlimRecord
from rebirth.reports.cold_view import cold_lines
from rebirth.reports.compare import Comparison, OpTypeRow, compare
from rebirth.reports.headline import headline_facts, noise_lines
from rebirth.reports.layout import NAME, NUMBER, SHORTEN, STACK, Column, Drop, FittedTable, Pair, arrow
from rebirth.reports.slim_view import quantization_text, technique_lines
from rebirth.reports.units import mib, ms, pct

CATEGORY_STYLE = {"tensor": "green", "non_tensor": "red", "framework": "dim"}
COUNT, MS, SHARE, DELTA = "{}", "{:.3f}", "{:.1f}%", "{:+.3f}"
"""How the comparison tables write an op count, a time in ms, a share in percent and a change in ms."""


def render_profile(profile: Profile, console: Optional[Console] = None, top: int = 15) -> None:
    """Print the summary lines, the op-type table and the top layers of ``profile``."""
    console = console or Console()
    for line in summary_lines(profile):
        console.print(line, highlight=False)
    for reason in profile.noise:
        console.print(f"[bold yellow]noisy:[/] {escape(str(reason))}", highlight=False)
    if profile.cold is not None:
        for line in cold_lines(profile.cold):
            console.print(escape(line), highlight=False)
    console.print(op_type_table(profile, top))
    if profile.summary.top_layers:
        console.print(layer_table(profile, top))
    for warning in profile.warnings:
        console.print(f"[yellow]warning:[/] {escape(str(warning))}", highlight=False)


def summary_lines(profile: Profile) -> list[str]:
    latency, memory, summary = profile.latency, profile.memory, profile.summary
    model = escape(profile.model.source or profile.model.path)
    device = escape(f"{profile.device.name} ({profile.device.kind})")
    return [
        f"[bold]{model}[/] on [bold]{device}[/], backend {escape(profile.model.backend)}, "
        f"{profile.settings.iterations} runs after {profile.settings.warmup} warm-up",
        f"latency p50 [bold]{ms(latency.p50)}[/] (p10 {ms(latency.p10)}, p90 {ms(latency.p90)}, "
        f"trimmed mean {ms(latency.trimmed_mean)}, CV {pct(latency.cv)}); load {ms(latency.load_ms)}, "
        f"first run {ms(latency.first_ms)}",
        f"memory: peak RSS {mib(memory.peak_rss_bytes)} ({_runner(profile)}; idle {mib(memory.baseline_rss_bytes)}), "
        f"weights in the .pte {mib(memory.constant_bytes)}, planned arena {mib(memory.planned_bytes)}",
        f"op time {ms(summary.total_ms)}: tensor [green]{pct(summary.tensor_share)}[/], "
        f"non-tensor [bold red]{pct(summary.non_tensor_share)}[/], framework {pct(summary.framework_share)}; "
        f"{pct(summary.attributed_share)} attributed to source layers",
        *condition_lines(profile),
    ]


def condition_lines(profile: Profile) -> list[str]:
    """The device over the run (its thermal gate, clock and heat) and the energy per inference, or why none."""
    device, lines = profile.device, []
    if device.cooling is not None:
        sampled = []
        if device.freq_khz_low:
            sampled.append(f"clock {device.freq_khz_low / 1000:.0f}-{(device.freq_khz_high or 0) / 1000:.0f} MHz")
        if device.temperature_c_peak is not None:
            sampled.append(f"up to {device.temperature_c_peak:.1f} °C")
        during = f"; while running: {', '.join(sampled)}" if sampled else ""
        lines.append(f"device: {escape(device.cooling.shown())}{during}")
    if profile.energy is not None:
        lines.append(f"energy: {escape(profile.energy.shown())}")
    return lines


def _runner(profile: Profile) -> str:
    kind = profile.device.runner_kind
    return {"native": "native runner", "python": "Python runner", "external": "the device's runner"}.get(
        kind or "", "runner")


def op_type_table(profile: Profile, top: int) -> FittedTable:
    table = FittedTable([Column("op type", NAME), Column("category"), *_numbers("count", "p50 ms", "%", "cum %")],
                        "Summary by op type", steps=(Drop("category"), SHORTEN, Drop("cum %")))
    for row in profile.summary.by_op_type[:top]:
        table.add_row(row.op_type, _category(row.category), str(row.count), f"{row.ms:.3f}", pct(row.share),
                      pct(row.cumulative_share))
    return table


def layer_table(profile: Profile, top: int) -> FittedTable:
    rows = profile.summary.top_layers[:top]
    table = FittedTable([Column("layer", NAME), Column("module"), *_numbers("ops", "p50 ms", "%", "non-tensor")],
                        f"Top {len(rows)} layers", steps=(Drop("module"), SHORTEN, Drop("ops")))
    for row in rows:
        table.add_row(row.layer, escape(row.module_type or ""), str(row.ops), f"{row.ms:.3f}", pct(row.share),
                      f"{row.non_tensor_ms:.3f}")
    return table


def _numbers(*headers: str) -> list[Column]:
    return [Column(header, NUMBER) for header in headers]


def _category(category: str) -> str:
    style = CATEGORY_STYLE.get(category, "")
    return f"[{style}]{escape(category)}[/]" if style else escape(category)


TONE_STYLE = {"good": "green", "bad": "red"}


def render_comparison(before: Profile, after: Profile, slim: Optional[SlimRecord] = None,
                      console: Optional[Console] = None, top: int = 15,
                      paired: Optional[PairedComparison] = None) -> None:
    """`rebirth report`: the headline of the HTML report, then op types and the layers where time moved."""
    console = console or Console()
    comparison = compare(before, after, slim, paired)
    for fact in headline_facts(comparison):
        style = TONE_STYLE.get(fact.tone, "bold")
        detail = f" [dim]({escape(fact.detail)})[/]" if fact.detail else ""
        console.print(f"{escape(fact.label)}: [{style}]{escape(fact.value)}[/]{detail}", highlight=False)
    if slim is not None and slim.quantization is not None:
        console.print(f"slimmer: {escape(quantization_text(slim.quantization, slim.accuracy))}", highlight=False)
    for line in technique_lines(slim) if slim is not None else []:
        console.print(f"slimmer: {escape(line)}", highlight=False)
    for line in noise_lines(comparison):
        console.print(f"[bold yellow]noisy:[/] {escape(line)}", highlight=False)
    console.print(op_type_comparison_table(comparison, top))
    console.print(layer_comparison_table(comparison, top))


def op_type_comparison_table(comparison: Comparison, top: int) -> FittedTable:
    table = FittedTable([Column("op type", NAME), Column("category"), *_numbers("count", "p50 ms", "Δ ms", "share")],
                        "Op types, before → after", steps=(Drop("category"), STACK, SHORTEN))
    rows = sorted(comparison.op_types, key=lambda row: -max(_ms_of(row.before), _ms_of(row.after)))[:top]
    for row in rows:
        table.add_row(row.op_type, _category(row.category), _sides(row, lambda side: side.count, COUNT),
                      _sides(row, lambda side: side.ms, MS), _delta(row.delta_ms),
                      _sides(row, lambda side: side.share * 100, SHARE))
    return table


def _sides(row: OpTypeRow, read: Callable[[OpTypeSummary], float], template: str) -> Pair:
    """What ``read`` gives on each side of an op type's row, ``before → after`` (``-`` where it does not occur)."""
    before, after = (None if side is None else read(side) for side in (row.before, row.after))
    return arrow(before, after, template)


def layer_comparison_table(comparison: Comparison, top: int) -> FittedTable:
    rows = sorted(comparison.layers, key=lambda row: -abs(row.delta_ms or 0.0))[:top]
    table = FittedTable([Column("layer", NAME), Column("module"), Column("slimmer"), *_numbers("p50 ms", "Δ ms")],
                        f"Top {len(rows)} layers by time moved", steps=(Drop("module"), STACK, SHORTEN))
    for row in rows:
        table.add_row(row.layer, escape(row.module_type or ""), STATUS_MARKUP.get(row.status, escape(row.status)),
                      arrow(row.before_ms, row.after_ms, MS), _delta(row.delta_ms))
    return table


STATUS_MARKUP = {"removed": "[bold red]removed[/]", "merged": "[bold yellow]merged[/]",
                 "regenerated": "[bold magenta]regenerated[/]",
                 "thinned": "[bold cyan]thinned[/]", "decomposed": "[bold cyan]decomposed[/]",
                 "only after": "[blue]only after[/]",
                 "only before": "[dim]only before[/]", "kept": "[dim]kept[/]"}


def _ms_of(row: Optional[OpTypeSummary]) -> float:
    return row.ms if row else 0.0


def _delta(value: Optional[float]) -> str:
    if value is None:
        return "-"
    style = "green" if value < 0 else "red" if value > 0 else "dim"
    return f"[{style}]{DELTA.format(value)}[/]"
