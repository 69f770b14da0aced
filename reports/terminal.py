"""A Profile in the terminal with rich: a summary, the op types, the top layers."""

from __future__ import annotations

from typing import Optional

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rebirth.contract.paired import PairedComparison
from rebirth.contract.profile import OpTypeSummary, Profile
from rebirth.contract.slim import SlimRecord
from rebirth.reports.compare import Comparison, compare
from rebirth.reports.headline import headline_facts, noise_lines
from rebirth.reports.slim_view import quantization_text
from rebirth.reports.units import mib, ms, pct

CATEGORY_STYLE = {"tensor": "green", "non_tensor": "red", "framework": "dim"}


def render_profile(profile: Profile, console: Optional[Console] = None, top: int = 15) -> None:
    """Print the summary lines, the op-type table and the top layers of ``profile``."""
    console = console or Console()
    for line in summary_lines(profile):
        console.print(line, highlight=False)
    for reason in profile.noise:
        console.print(f"[bold yellow]noisy:[/] {escape(str(reason))}", highlight=False)
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
    ]


def _runner(profile: Profile) -> str:
    kind = profile.device.runner_kind
    return {"native": "native runner", "python": "Python runner", "external": "the device's runner"}.get(
        kind or "", "runner")


def op_type_table(profile: Profile, top: int) -> Table:
    table = Table(title="Summary by op type", title_justify="left")
    for column in ("op type", "category", "count", "p50 ms", "%", "cum %"):
        table.add_column(column, justify="left" if column in ("op type", "category") else "right")
    for row in profile.summary.by_op_type[:top]:
        style = CATEGORY_STYLE.get(row.category, "")
        table.add_row(escape(row.op_type), f"[{style}]{row.category}[/]" if style else row.category,
                      str(row.count), f"{row.ms:.3f}", pct(row.share), pct(row.cumulative_share))
    return table


def layer_table(profile: Profile, top: int) -> Table:
    table = Table(title=f"Top {min(top, len(profile.summary.top_layers))} layers", title_justify="left")
    rows = profile.summary.top_layers[:top]
    table.add_column("layer", no_wrap=True, min_width=max((len(r.layer) for r in rows), default=5))
    table.add_column("module", overflow="ellipsis", no_wrap=True)
    for column in ("ops", "p50 ms", "%", "non-tensor"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(escape(row.layer), escape(row.module_type or ""), str(row.ops), f"{row.ms:.3f}",
                      pct(row.share), f"{row.non_tensor_ms:.3f}")
    return table


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
    for line in noise_lines(comparison):
        console.print(f"[bold yellow]noisy:[/] {escape(line)}", highlight=False)
    console.print(op_type_comparison_table(comparison, top))
    console.print(layer_comparison_table(comparison, top))


def op_type_comparison_table(comparison: Comparison, top: int) -> Table:
    table = Table(title="Op types, before → after", title_justify="left")
    for column in ("op type", "category", "count", "p50 ms", "Δ ms", "share"):
        table.add_column(column, justify="left" if column in ("op type", "category") else "right", no_wrap=True)
    rows = sorted(comparison.op_types, key=lambda row: -max(_ms_of(row.before), _ms_of(row.after)))[:top]
    for row in rows:
        style = CATEGORY_STYLE.get(row.category, "")
        before, after = row.before, row.after
        table.add_row(escape(row.op_type), f"[{style}]{row.category}[/]" if style else row.category,
                      _arrow(before and before.count, after and after.count, "{}"),
                      _arrow(before and before.ms, after and after.ms, "{:.3f}"), _delta(row.delta_ms),
                      _arrow(before and before.share * 100, after and after.share * 100, "{:.1f}%"))
    return table


def layer_comparison_table(comparison: Comparison, top: int) -> Table:
    rows = sorted(comparison.layers, key=lambda row: -abs(row.delta_ms or 0.0))[:top]
    table = Table(title=f"Top {len(rows)} layers by time moved", title_justify="left")
    table.add_column("layer", no_wrap=True, min_width=min(40, max((len(r.layer) for r in rows), default=5)))
    table.add_column("module", overflow="ellipsis", no_wrap=True)
    for column in ("slimmer", "p50 ms", "Δ ms"):
        table.add_column(column, justify="left" if column == "slimmer" else "right", no_wrap=True)
    for row in rows:
        table.add_row(escape(row.layer), escape(row.module_type or ""), STATUS_MARKUP.get(row.status, row.status),
                      _arrow(row.before_ms, row.after_ms, "{:.3f}"), _delta(row.delta_ms))
    return table


STATUS_MARKUP = {"removed": "[bold red]removed[/]", "merged": "[bold yellow]merged[/]",
                 "regenerated": "[bold magenta]regenerated[/]",
                 "thinned": "[bold cyan]thinned[/]", "decomposed": "[bold cyan]decomposed[/]",
                 "only after": "[blue]only after[/]",
                 "only before": "[dim]only before[/]", "kept": "[dim]kept[/]"}


def _ms_of(row: Optional[OpTypeSummary]) -> float:
    return row.ms if row else 0.0


def _arrow(before: Optional[float | OpTypeSummary], after: Optional[float | OpTypeSummary], template: str) -> str:
    """``before → after``; ``-`` for a side that is None (``row and row.field`` gives None for no row)."""
    return " → ".join("-" if value is None else template.format(value) for value in (before, after))


def _delta(value: Optional[float]) -> str:
    if value is None:
        return "-"
    style = "green" if value < 0 else "red" if value > 0 else "dim"
    return f"[{style}]{value:+.3f}[/]"
