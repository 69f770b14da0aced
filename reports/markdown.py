"""Regression verdicts and farm runs as Markdown summaries, for a CI step summary or a pull-request comment.

The verdict comes first, in one line; then one table row per device, model and check (a failed run is
one row); then one line for each check that did not pass, with its reason. The table has no links and
is padded so that it reads as a table in a terminal too, in at most ``WIDTH`` columns: long device and
model names are shortened in the middle there, and given whole in the lines below.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rebirth.contract import ExitStatus
from rebirth.contract.checks import FAILED, PASS, CheckResult, Verdict, exit_code, format_change
from rebirth.contract.files import write_text_atomic
from rebirth.contract.stored import model_key
from rebirth.reports.farm_view import DeviceOutcome
from rebirth.reports.units import mib, ms

WIDTH = 80
HEADERS = ("device", "model", "check", "status", "change")
VERDICT_WORDS = {ExitStatus.OK: "PASS", ExitStatus.REGRESSION: "REGRESSION", ExitStatus.NO_ANSWER: "NO ANSWER"}


def write_summary(path: str | os.PathLike, verdicts: Sequence[Verdict]) -> None:
    """Write the Markdown summary of ``verdicts`` to ``path`` atomically."""
    write_text_atomic(Path(path), markdown_summary(verdicts))


def markdown_summary(verdicts: Sequence[Verdict]) -> str:
    rows = [_row(verdict, result) for verdict in verdicts for result in (verdict.results or (None,))]
    lines = [f"**rebirth regress: {verdict_line(verdicts)}**", ""]
    lines += _table(rows) if rows else ["No results were judged."]
    notes = [_note(verdict, result) for verdict in verdicts for result in (verdict.results or (None,))
             if verdict.status == FAILED or (result is not None and result.status != PASS)]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


FARM_HEADERS = ("device", "model", "p50", "peak RSS", "status")


def write_farm_summary(path: str | os.PathLike, runs: Sequence[DeviceOutcome]) -> None:
    """Write the Markdown summary of a farm run (``rebirth farm run --summary``) to ``path`` atomically."""
    write_text_atomic(Path(path), farm_summary(runs))


def farm_summary(runs: Sequence[DeviceOutcome]) -> str:
    """The farm run's outcome first (every device profiled, or how many failed), one row per device, then
    each failed device's error and each stored run's path."""
    failed = [run for run in runs if run.result is None]
    word = "NO ANSWER" if failed else "OK"
    head = (f"**rebirth farm run: {word}: {len(runs) - len(failed)} of {len(runs)} "
            f"device{'s' if len(runs) != 1 else ''} profiled" + (f", {len(failed)} failed**" if failed else "**"))
    rows: list[tuple[str, ...]] = []
    notes = []
    for run in runs:
        stored = run.result
        if stored is None:
            rows.append((run.device, "-", "-", "-", FAILED))
            notes.append(f"- `{_code(run.device)}` failed: {_plain(run.error or 'no reason given')}")
            continue
        profile = stored.profile
        memory = profile.memory.peak_rss_bytes
        rows.append((run.device, model_key(profile.model), ms(profile.latency.p50), mib(memory) if memory else "-",
                     "ok"))
        notes.append(f"- `{_code(run.device)}` stored as `{_code(stored.where)}`")
    lines = [head, ""] + (_table(rows, FARM_HEADERS) if rows else ["No device was named."])
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def verdict_line(verdicts: Sequence[Verdict]) -> str:
    """``REGRESSION: 1 of 6 checks regressed on 2 devices`` (the exit code's meaning, and its counts)."""
    status = exit_code(verdicts)
    checks = [result for verdict in verdicts for result in verdict.results]
    devices = len({verdict.device for verdict in verdicts})
    failed = sum(1 for verdict in verdicts if verdict.status == FAILED)
    on = f"on {devices} device{'s' if devices != 1 else ''}"
    counts = {label: sum(1 for result in checks if result.status == label) for label in {r.status for r in checks}}
    parts = [f"{count} {label}" for label, count in sorted(counts.items())]
    if failed:
        parts.append(f"{failed} run{'s' if failed != 1 else ''} failed")
    word = VERDICT_WORDS.get(status, status.name)
    return f"{word}: {len(checks)} check{'s' if len(checks) != 1 else ''} {on} ({', '.join(parts) or 'none'})"


def _row(verdict: Verdict, result: CheckResult | None) -> tuple[str, ...]:
    if result is None:
        return verdict.device, verdict.model, "run", FAILED, "n/a"
    return verdict.device, verdict.model, str(result.check), result.status, _short_change(result)


def _short_change(result: CheckResult) -> str:
    """The change without its interval (the note below has it)."""
    return format_change(result).split(" [")[0]


def _note(verdict: Verdict, result: CheckResult | None) -> str:
    where = f"`{_code(verdict.device)}` `{_code(verdict.model)}`"
    if result is None:
        return f"- {where}: the run failed: {_plain(verdict.error or 'no reason given')}"
    reason = f": {_plain(result.reason)}" if result.reason else ""
    return f"- {where} {result.check}: {result.status}, {_plain(format_change(result))}{reason}"


def _table(rows: list[tuple[str, ...]], headers: tuple[str, ...] = HEADERS) -> list[str]:
    widths = [max(len(headers[i]), *(len(_plain(row[i])) for row in rows)) for i in range(len(headers))]
    overflow = sum(widths) + 3 * len(widths) + 1 - WIDTH
    for index in (1, 0):  # the model's name gives way first, then the device's
        if overflow <= 0:
            break
        cut = max(0, min(overflow, widths[index] - max(len(headers[index]), 8)))
        widths[index] -= cut
        overflow -= cut

    def line(values, escape=True) -> str:
        return "| " + " | ".join((_fit(value, width) if escape else value).ljust(width)
                                 for value, width in zip(values, widths)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return [line(headers, escape=False), rule, *(line(row) for row in rows)]


def _fit(text: str, width: int) -> str:
    """``text`` made safe (``_plain``) in at most ``width`` characters, shortened in the middle with ``…``
    before it is escaped, so no escape is cut in two."""
    keep = len(text)
    while len(_plain(shown := _middle(text, keep))) > width and keep > 1:
        keep -= 1
    return _plain(shown)


def _middle(text: str, keep: int) -> str:
    if len(text) <= keep:
        return text
    head = (keep - 1) // 2
    return text[:head] + "…" + text[len(text) - (keep - 1 - head):]


def _plain(text: str) -> str:
    """``text`` safe in a Markdown table cell or line: no pipes, no line breaks, no HTML, link or emphasis
    syntax (underscores stay: inside a word they are plain text, and names are full of them)."""
    for mark in ("\\", "|", "<", ">", "[", "]", "`", "*"):
        text = text.replace(mark, "\\" + mark)
    return " ".join(text.split())


def _code(text: str) -> str:
    """``text`` inside backticks: no backticks or line breaks of its own."""
    return " ".join(text.replace("`", "'").split())
