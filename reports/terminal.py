"""A Profile in the terminal with rich: a summary, the op types, the top layers."""

from __future__ import annotations

from typing import Optional

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from profiler.record import Profile
from reports.units import mib, ms, pct

CATEGORY_STYLE = {"tensor": "green", "non_tensor": "red", "framework": "dim"}


def render_profile(profile: Profile, console: Optional[Console] = None, top: int = 15) -> None:
    """Print the summary lines, the op-type table and the top layers of ``profile``."""
    console = console or Console()
    for line in summary_lines(profile):
        console.print(line, highlight=False)
    console.print(op_type_table(profile, top))
    if profile.summary.top_layers:
        console.print(layer_table(profile, top))
    for warning in profile.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


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
        f"memory planned {mib(memory.planned_bytes)}, peak RSS {mib(memory.peak_rss_bytes)} "
        f"(idle runner {mib(memory.baseline_rss_bytes)}, model {mib(memory.model_rss_bytes)})",
        f"op time {ms(summary.total_ms)}: tensor [green]{pct(summary.tensor_share)}[/], "
        f"non-tensor [bold red]{pct(summary.non_tensor_share)}[/], framework {pct(summary.framework_share)}; "
        f"{pct(summary.attributed_share)} attributed to source layers",
    ]


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
