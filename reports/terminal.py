"""A Profile in the terminal with rich: a summary, the op types, the top layers."""

from __future__ import annotations

from typing import Optional

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from profiler.record import OpTypeSummary, Profile
from reports.compare import Comparison, compare
from reports.headline import headline_facts
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


def render_device(report, console: Optional[Console] = None) -> None:
    """`rebirth devices info`: identity, SoC, cores with clocks and governors, temperatures, battery."""
    console = console or Console()
    description, props = report.description, report.props
    soc = " / ".join(dict.fromkeys(filter(None, (props.get("ro.soc.manufacturer"), props.get("ro.soc.model"),
                                                 props.get("ro.board.platform"), props.get("ro.hardware")))))
    identity = Table(show_header=False, title=f"{escape(description.name)} ({escape(description.kind)})",
                     title_justify="left")
    identity.add_column(style="bold")
    identity.add_column()
    rows = [("model", description.product_model), ("SoC / hardware", soc or None), ("ABI", description.abi),
            ("OS", description.os), ("serial", description.serial), ("big-core mask", report.mask)]
    battery = report.battery
    if battery is not None:
        parts = [f"{battery.level}%" if battery.level is not None else None,
                 f"{battery.temperature_c:.1f} °C" if battery.temperature_c is not None else None,
                 battery.status, f"powered by {battery.powered}" if battery.powered else None]
        rows.append(("battery", ", ".join(filter(None, parts)) or None))
    for key, value in rows:
        identity.add_row(key, escape(str(value)) if value is not None else "[dim]unknown[/]")
    console.print(identity)
    cores = Table(title="cores", title_justify="left")
    for column in ("core", "max MHz", "current MHz", "governor"):
        cores.add_column(column, justify="right" if "MHz" in column else "left")
    for core in report.snapshot.cores:
        cores.add_row(str(core.index), _mhz(core.max_freq_khz), _mhz(core.cur_freq_khz), escape(core.governor or "?"))
    console.print(cores)
    if report.snapshot.zones:
        zones = Table(title="temperatures", title_justify="left")
        zones.add_column("zone")
        zones.add_column("type")
        zones.add_column("°C", justify="right")
        for zone in report.snapshot.zones:
            zones.add_row(str(zone.index), escape(zone.kind or "?"),
                          f"{zone.temperature_c:.1f}" if zone.temperature_c is not None else "?")
        console.print(zones)


def _mhz(khz: Optional[int]) -> str:
    return f"{khz / 1000:.0f}" if khz else "?"


def render_plan(candidates, console: Optional[Console] = None) -> None:
    """`rebirth slim --plan`: every candidate merge with the time the profile says it saves."""
    console = console or Console()
    table = Table(title="slimming plan (best first; applied while it saves time and the budget holds)",
                  title_justify="left")
    for column in ("#", "merge", "layers", "exact", "saves ms", "adds ms", "gain ms", "removes KiB"):
        table.add_column(column, justify="right" if "ms" in column or column in ("#", "removes KiB") else "left",
                         no_wrap=column != "layers", ratio=3 if column == "layers" else None)
    for index, candidate in enumerate(candidates, 1):
        match = candidate.match
        style = "" if candidate.worthwhile else "dim"
        table.add_row(str(index), match.kind, escape(", ".join(match.layers)), "yes" if match.exact else "learned",
                      f"{candidate.saves_ms:.3f}", f"{candidate.costs_ms:.3f}", f"{candidate.gain_ms:+.3f}",
                      f"{candidate.memory_bytes / 1024:.0f}", style=style)
    console.print(table)


def render_slim(record: dict, console: Optional[Console] = None) -> None:
    """`rebirth slim`: the merges applied and skipped, sizes and accuracy before and after."""
    console = console or Console()
    table = Table(title="merges applied", title_justify="left")
    for column in ("merge", "layers", "kind", "relearned", "est. gain ms"):
        table.add_column(column)
    for merge in record["merges"]:
        table.add_row(merge["kind"], escape(", ".join(merge["layers"])), "exact" if merge["exact"] else "learned",
                      escape(", ".join(merge["learned"])) or "-", f"{merge['saves_ms'] - merge['costs_ms']:.3f}")
    console.print(table)
    for skip in record["skipped"]:
        console.print(f"skipped {skip['kind']} {escape(', '.join(skip['layers']))}: {escape(skip['reason'])}",
                      highlight=False)
    accuracy, params, macs = record["accuracy"], record["params"], record["macs"]
    console.print(f"parameters {params['before']:,} -> {params['after']:,}; MACs {macs['before']:,} -> "
                  f"{macs['after']:,}", highlight=False)
    if accuracy["before"] and accuracy["after"]:
        console.print(f"held-out top-1 {accuracy['before']['top1']:.1f}% -> {accuracy['after']['top1']:.1f}% on "
                      f"{escape(accuracy['dataset'] or '?')}; agreement with the original "
                      f"{accuracy['agreement']:.1f}%", highlight=False)
    elif accuracy["agreement"] is not None:
        console.print(f"agreement with the original's predictions {accuracy['agreement']:.1f}% (no trained weights)",
                      highlight=False)
    for message in record["messages"]:
        console.print(f"[yellow]note:[/] {escape(message)}", highlight=False)


TONE_STYLE = {"good": "green", "bad": "red"}


def render_comparison(before: Profile, after: Profile, slim: Optional[dict] = None,
                      console: Optional[Console] = None, top: int = 15) -> None:
    """`rebirth report`: the headline of the HTML report, then op types and the layers where time moved."""
    console = console or Console()
    comparison = compare(before, after, slim)
    for fact in headline_facts(comparison):
        style = TONE_STYLE.get(fact.tone, "bold")
        detail = f" [dim]({escape(fact.detail)})[/]" if fact.detail else ""
        console.print(f"{escape(fact.label)}: [{style}]{escape(fact.value)}[/]{detail}", highlight=False)
    console.print(op_type_comparison_table(comparison, top))
    console.print(layer_comparison_table(comparison, top))


def op_type_comparison_table(comparison: Comparison, top: int) -> Table:
    table = Table(title="Op types, before → after", title_justify="left")
    for column in ("op type", "category", "count", "p50 ms", "Δ ms", "share"):
        table.add_column(column, justify="left" if column in ("op type", "category") else "right", no_wrap=True)
    rows = sorted(comparison.op_types, key=lambda row: -max(_ms_of(row.before), _ms_of(row.after)))[:top]
    for row in rows:
        style = CATEGORY_STYLE.get(row.category, "")
        table.add_row(escape(row.op_type), f"[{style}]{row.category}[/]" if style else row.category,
                      _arrow(row.before and row.before.count, row.after and row.after.count, "{}"),
                      _arrow(row.before and row.before.ms, row.after and row.after.ms, "{:.3f}"), _delta(row.delta_ms),
                      _arrow(row.before and row.before.share * 100, row.after and row.after.share * 100, "{:.1f}%"))
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
                 "regenerated": "[bold magenta]regenerated[/]", "only after": "[blue]only after[/]",
                 "only before": "[dim]only before[/]", "kept": "[dim]kept[/]"}


def _ms_of(row: Optional[OpTypeSummary]) -> float:
    return row.ms if row else 0.0


def _arrow(before: Optional[float], after: Optional[float], template: str) -> str:
    return " → ".join("-" if value is None else template.format(value) for value in (before, after))


def _delta(value: Optional[float]) -> str:
    if value is None:
        return "-"
    style = "green" if value < 0 else "red" if value > 0 else "dim"
    return f"[{style}]{value:+.3f}[/]"
