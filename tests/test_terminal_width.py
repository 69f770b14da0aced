"""Every terminal view in a log: at 80 columns without a terminal (a CI log), and at 60 and 120, no table cuts a
value and no line is wider than the console; a wide console (``COLUMNS=200``) keeps every column, one line a
row. The tables are read back cell by cell, and each value is compared with the record it came from."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from rich.console import Console

from rebirth.contract.device import Battery, CoreState, DeviceReport, DeviceStatus, Zone
from rebirth.contract.paired import Budget, PairedComparison, PairedRun, Question
from rebirth.contract.profile import Profile
from rebirth.contract.slim import MergeRecord, PlannedMerge, QuantizationRecord
from rebirth.contract.summary import summarize
from rebirth.reports import (
    render_comparison,
    render_device,
    render_device_list,
    render_farm_summary,
    render_plan,
    render_profile,
    render_slim,
    render_verdicts,
)
from rebirth.reports.compare import compare
from rebirth.reports.headline import headline_facts
from rebirth.reports.layout import NAME_FLOOR, NUMBER, Column, FittedTable, Pair, shorten
from rebirth.reports.slim_view import step_savings
from rebirth.reports.terminal import COUNT, DELTA, MS, SHARE
from rebirth.reports.units import mib, ms, pct
from tests.synthetic import layer_names, slimmed_pair
from tests.test_regress import failed, judge, run
from tests.test_report_html import renamed

WIDTHS = (60, 80, 120)
OP_TYPES, LAYERS = "Op types, before → after", "Top 15 layers by time moved"


def googlenet_name(index: int) -> str:
    """A layer name as torchvision's GoogLeNet has them: ``inception4e.branch3.1.conv``."""
    block = f"inception{3 + index % 3}{'abcde'[index % 5]}"
    return f"{block}.branch{1 + index % 4}.{index % 2}.conv"


def googlenet_ops(profile: Profile) -> Profile:
    """``profile`` with the transposes before each convolution named as GoogLeNet's pooling at its end."""
    ops = tuple(dataclasses.replace(op, op_type="global_avg_pool") if op.op_type == "transpose" else op
                for op in profile.ops)
    return dataclasses.replace(profile, ops=ops, summary=summarize(ops))


@pytest.fixture(scope="module")
def main_job():
    """What `rebirth optimize zoo:googlenet-small --quantize int8` prints from: the profiles before and after
    with GoogLeNet's layer names and weights, the slim record with its int8 step, and the paired comparison."""
    before, after, slim = slimmed_pair(ops=400, samples=40)
    names = {name: googlenet_name(index) for index, name in enumerate(layer_names(80)) if ".lrn" not in name}
    before, after = (dataclasses.replace(googlenet_ops(renamed(profile, names, "local", source)),
                                         memory=dataclasses.replace(profile.memory, constant_bytes=size))
                     for profile, source, size in ((before, "zoo:googlenet-small", 1_559_464),
                                                   (after, "out/slim.pte", 459_571)))
    slim = dataclasses.replace(slim, quantization=QuantizationRecord(
        "int8", True, tuple(names.values())[:58], 512, 96.4, 96.0, 95.8, 1_559_464, 459_571))
    runs = tuple(PairedRun(side, block, 0.6 if side == "a" else 0.16, 0.01) for block in range(20) for side in "ab")
    paired = PairedComparison("before.pte", "out/slim.pte", "local", "p50", Question(0.03), Budget(), runs, 20,
                              0.264, 0.253, 0.275, 0.95, "undecided", "the latency ratio is wider than ±3%", 12.0,
                              True)
    return before, after, slim, paired


# --- reading a rendered table back -----------------------------------------------------------

@dataclass(frozen=True)
class Read:
    """A table as printed: its headers (wrapped lines joined) and its rows (each cell's lines joined by \\n)."""

    headers: list[str]
    rows: list[list[str]]

    def column(self, header: str) -> list[str]:
        return [row[self.headers.index(header)] for row in self.rows]


def read_tables(text: str) -> dict[str, Read]:
    """Every table in ``text`` by the line just above it (its title)."""
    lines, tables = text.splitlines(), {}
    for start, line in enumerate(lines):
        if line.startswith(("┏", "┌")):
            tables[lines[start - 1].strip()] = _read(lines[start + 1:])
    return tables


def _read(lines: list[str]) -> Read:
    rule = next(index for index, line in enumerate(lines) if line[0] in "┡└")
    header_lines = [_cells(line, "┃") for line in lines[:rule]]
    headers = [" ".join(filter(None, parts)) for parts in zip(*header_lines)]
    rows: list[list[str]] = []
    for line in lines[len(header_lines) + 1:]:
        if not line.startswith("│"):
            break
        cells = _cells(line, "│")
        if cells[0] or not rows:
            rows.append(cells)
        else:
            rows[-1] = [f"{old}\n{new}" if new else old for old, new in zip(rows[-1], cells)]
    return Read(headers, rows)


def _cells(line: str, bar: str) -> list[str]:
    return [cell.strip() for cell in line.strip()[1:-1].split(bar)]


def one_line(cell: str) -> str:
    return " ".join(cell.split())


def is_name(cell: str, name: str) -> bool:
    """``cell`` shows ``name``: whole, or shortened in the middle, never below the floor."""
    if cell == name:
        return True
    head, _, tail = cell.partition("…")
    return bool(tail) and len(cell) >= NAME_FLOOR and name.startswith(head) and name.endswith(tail)


def row_of(cell: str, names: list[str]) -> int:
    found = [index for index, name in enumerate(names) if is_name(cell, name)]
    assert len(found) == 1, (cell, found)
    return found[0]


def pair(before, after, template: str) -> str:
    return " → ".join("-" if value is None else template.format(value) for value in (before, after))


def render(width: int, draw) -> str:
    console = Console(file=io.StringIO(), width=width)
    draw(console)
    text = console.file.getvalue()
    assert max(map(len, text.splitlines())) <= width, text
    return text


# --- the main job ----------------------------------------------------------------------------

def check_main_job(text: str, width: int, main_job) -> dict[str, Read]:
    """Every before and after value of the comparison's headline and tables is in ``text``, whole."""
    before, after, slim, paired = main_job
    comparison = compare(before, after, slim, paired)
    lines = text.splitlines()
    for fact in headline_facts(comparison):
        assert any(line.startswith(f"{fact.label}: {fact.value}") for line in lines), fact
    tables = read_tables(text)
    op_types, layers = tables[OP_TYPES], tables[LAYERS]
    rows = {row.op_type: row for row in comparison.op_types}
    names = list(rows)
    assert len(op_types.rows) == min(15, len(rows))
    for cells in op_types.rows:
        row = rows[names[row_of(cells[0], names)]]
        shown = dict(zip(op_types.headers, map(one_line, cells)))
        sides = row.before, row.after
        assert shown["count"] == pair(*(side and side.count for side in sides), COUNT)
        assert shown["p50 ms"] == pair(*(side and side.ms for side in sides), MS)
        assert shown["share"] == pair(*(side and side.share * 100 for side in sides), SHARE)
        assert shown["Δ ms"] == DELTA.format(row.delta_ms)
    layer_rows = {row.layer: row for row in comparison.layers}
    names = list(layer_rows)
    assert len(layers.rows) == 15
    for cells in layers.rows:
        row = layer_rows[names[row_of(cells[0], names)]]
        shown = dict(zip(layers.headers, map(one_line, cells)))
        assert shown["p50 ms"] == pair(row.before_ms, row.after_ms, MS)
        assert shown["Δ ms"] == DELTA.format(row.delta_ms) and shown["slimmer"] == row.status
    check_left_out(text, width, {OP_TYPES: (op_types, ["op type", "category", "count", "p50 ms", "Δ ms", "share"]),
                                 LAYERS: (layers, ["layer", "module", "slimmer", "p50 ms", "Δ ms"])})
    return tables


def check_left_out(text: str, width: int, tables: dict[str, tuple[Read, list[str]]]) -> None:
    """A table without some of its columns says which, in one line under it."""
    for title, (table, headers) in tables.items():
        missing = [header for header in headers if header not in table.headers]
        said = re.search(rf"^{re.escape(title)}.*?\nleft out to fit {width} columns: ([^(]*) \(", text, re.S | re.M)
        if missing:
            assert said and said.group(1) == ", ".join(missing), (title, missing)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_main_job_shows_every_value_whole(main_job, width):
    before, after, slim, paired = main_job
    text = render(width, lambda console: render_comparison(before, after, slim, console=console, paired=paired))
    tables = check_main_job(text, width, main_job)
    if width >= 120:
        assert "left out" not in text and all("\n" not in cell for row in tables[LAYERS].rows for cell in row)
    if width == 80:  # the CI log: one line a row, the module type left out and said so
        assert all("\n" not in cell for table in tables.values() for row in table.rows for cell in row)
    assert "slimmer: quantized to int8: 58 layers" in text


def test_a_wide_console_keeps_every_column_on_one_line_a_row(main_job, monkeypatch, capsys):
    before, after, slim, paired = main_job
    monkeypatch.setenv("COLUMNS", "200")
    render_comparison(before, after, slim, paired=paired)
    text = capsys.readouterr().out
    tables = check_main_job(text, 200, main_job)
    assert tables[OP_TYPES].headers == ["op type", "category", "count", "p50 ms", "Δ ms", "share"]
    assert tables[LAYERS].headers == ["layer", "module", "slimmer", "p50 ms", "Δ ms"]
    assert all("\n" not in cell for table in tables.values() for row in table.rows for cell in row)
    assert "left out" not in text and 80 < max(map(len, text.splitlines())) <= 200


def test_rebirth_report_into_a_log_is_80_columns_with_every_value(main_job, tmp_path):
    """No terminal anywhere (stdin, stdout and stderr are not one) and no COLUMNS: rich's 80 columns."""
    before, after, slim, paired = main_job
    for record, name in ((before, "before"), (after, "after"), (slim, "slim"), (paired, "comparison")):
        record.save(tmp_path / f"{name}.json")
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    done = subprocess.run([sys.executable, "-m", "rebirth.cli", "report", "before.json", "after.json", "--slim",
                           "slim.json", "--paired", "comparison.json", "-o", "r.html"], cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert max(map(len, done.stdout.splitlines())) <= 80
    check_main_job(done.stdout, 80, main_job)
    assert "left out to fit 80 columns: category" in done.stdout


# --- the other views -------------------------------------------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
def test_a_profile_shows_every_value_whole(main_job, width):
    profile = main_job[0]
    text = render(width, lambda console: render_profile(profile, console=console))
    tables = read_tables(text)
    op_types, layers = tables["Summary by op type"], tables["Top 15 layers"]
    types = [row.op_type for row in profile.summary.by_op_type]
    for cells in op_types.rows:
        row = profile.summary.by_op_type[row_of(cells[0], types)]
        shown = dict(zip(op_types.headers, cells))
        assert (shown["count"], shown["p50 ms"], shown["%"]) == (str(row.count), f"{row.ms:.3f}", pct(row.share))
    names = [row.layer for row in profile.summary.top_layers]
    assert len(layers.rows) == 15
    for cells in layers.rows:
        row = profile.summary.top_layers[row_of(cells[0], names)]
        shown = dict(zip(layers.headers, cells))
        assert (shown["p50 ms"], shown["%"], shown["non-tensor"]) == (f"{row.ms:.3f}", pct(row.share),
                                                                      f"{row.non_tensor_ms:.3f}")
    check_left_out(text, width, {"Summary by op type": (op_types, ["op type", "category", "count", "p50 ms", "%",
                                                                   "cum %"]),
                                 "Top 15 layers": (layers, ["layer", "module", "ops", "p50 ms", "%", "non-tensor"])})
    assert f"latency p50 {ms(profile.latency.p50)}" in text


@pytest.fixture(scope="module")
def slim_steps(main_job):
    """The slim record with the steps a channel cut and a decomposition of the whole network add."""
    slim = main_job[2]
    names = tuple(googlenet_name(index) for index in range(34))
    steps = (MergeRecord("merge_pool_into_conv", ("inception5b.branch2.1.conv", "inception5b.branch2.1.bn",
                                                  "maxpool3"), True, saves_ms=0.05, macs_saved=123_456_789,
                         params_saved=-2048),
             MergeRecord("reduce_channels", names, False, saves_ms=1.234, macs_saved=98_765_432,
                         params_saved=456_789, quality_before=96.4, quality_after=96.0,
                         detail="kept 75% of channels in 34 layers; trained 2 epochs"))
    return dataclasses.replace(slim, merges=slim.merges + steps)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_slim_record_shows_every_step_whole(slim_steps, width):
    text = render(width, lambda console: render_slim(slim_steps, console=console))
    table = next(iter(read_tables(text).values()))
    assert len(table.rows) == len(slim_steps.merges)
    for cells, merge in zip(table.rows, slim_steps.merges):
        shown = dict(zip(table.headers, map(one_line, cells)))
        assert (shown["est. gain ms"], shown["MACs saved"], shown["weights saved"], shown["points lost"]) == (
            f"{merge.gain_ms:.3f}", *step_savings(merge))
    notes = [line for line in text.splitlines() if line.startswith("[")]
    assert (width < 100) == bool(notes)  # where the layers do not fit, they are notes under the table
    assert "reduce_channels" in text and "merge_pool_into_conv" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_the_plan_shows_every_candidate_whole(width):
    plan = [PlannedMerge("remove_lrn", ("lrn1",), False, 0.17, 0.0, 0, True),
            PlannedMerge("merge_pool_into_conv", ("conv1.0", "conv1.1", "pool1"), True, 0.05, 0.01, 12288, True),
            PlannedMerge("merge_parallel", tuple(googlenet_name(index) for index in range(4)), True, 0.02, 0.05, 0,
                         False, detail="4 branches into one conv")]
    text = render(width, lambda console: render_plan(plan, console=console))
    table = next(iter(read_tables(text).values()))
    for cells, merge in zip(table.rows, plan):
        shown = dict(zip(table.headers, cells))
        assert (shown["saves ms"], shown["adds ms"], shown["gain ms"], shown["removes KiB"]) == (
            f"{merge.saves_ms:.3f}", f"{merge.costs_ms:.3f}", f"{merge.gain_ms:+.3f}",
            f"{merge.memory_bytes / 1024:.0f}")
    assert all(kind in text for kind in ("remove_lrn", "merge_pool_into_conv", "merge_parallel"))


def test_regression_verdicts_fit_80_columns_one_table_per_device_and_model():
    verdicts = [dataclasses.replace(judge(run(1), run(2, scale=1.2), ["p50:5%", "peak_rss:5%"]),
                                    device="pixel-8-lab-2", model="zoo:googlenet-small"),
                failed("lab-2", "zoo:googlenet", "unreachable: adb: device 192.0.2.7:5555 not found")]
    text = render(80, lambda console: render_verdicts(verdicts, console))
    tables = read_tables(text)
    checks = tables["pixel-8-lab-2 · zoo:googlenet-small"]
    for cells, result in zip(checks.rows, verdicts[0].results):
        shown = dict(zip(checks.headers, map(one_line, cells)))
        assert shown["check"] == str(result.check) and shown["change"].startswith(f"{result.change * 100:+.1f}%")
    assert checks.column("before") == [ms(verdicts[0].results[0].before), mib(int(verdicts[0].results[1].before))]
    assert tables["lab-2 · zoo:googlenet"].column("status") == ["failed"]
    assert "[3] unreachable: adb: device 192.0.2.7:5555 not found" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_the_farm_summary_keeps_its_paths_whole(main_job, width, tmp_path):
    profile = main_job[0]
    where = (f"{tmp_path / '.rebirth-store' / 'rebirth.sqlite'}"
             "#AMD_EPYC-Linux_6.18.44_fc_v1300_x86_64_with_glibc2.36-bb8ce7ae/0001")
    runs = [SimpleNamespace(device="local", error=None, result=SimpleNamespace(profile=profile, where=where)),
            SimpleNamespace(device="pixel-8-lab-2", error="unreachable: adb: device 192.0.2.7:5555 not found",
                            result=None)]
    text = render(width, lambda console: render_farm_summary(runs, console))
    table = read_tables(text)["farm run"]
    assert table.column("p50") == [ms(profile.latency.p50), "-"]
    assert table.column("peak RSS") == [mib(profile.memory.peak_rss_bytes), "-"]
    assert where in "".join(text.splitlines())  # folded onto lines, never cut


@pytest.mark.parametrize("width", WIDTHS)
def test_devices_fit(width):
    rows = [DeviceStatus("local", "local", "this machine", "ready", "x86_64, Linux 6.18, native runner built"),
            DeviceStatus("pixel-8-lab-2", "adb", "192.0.2.7:5555", "unreachable",
                         "adb: failed to connect to '192.0.2.7:5555': Connection refused")]
    text = render(width, lambda console: render_device_list(rows, "/home/runner/work/rebirth/devices.toml", console))
    table = next(iter(read_tables(text).values()))
    assert [one_line(cell) for cell in table.column("address / serial")] == ["this machine", "192.0.2.7:5555"]
    if "detail" in table.headers:
        assert one_line(table.column("detail")[1]) == rows[1].detail
    else:  # a note under the table
        assert table.column("note") == ["[1]", "[2]"] and f"[2] {rows[1].detail}" in one_line(text)
    report = DeviceReport(slimmed_pair(ops=10, samples=3)[0].device, {"ro.soc.model": "SM8550"},
                          tuple(CoreState(index, 3_187_200, 2_000_000, "schedutil") for index in range(8)),
                          (Zone(0, "cpu-0-0-usr", 41.2),), Battery(87, 30.5, "Charging", "USB"), "f0")
    text = render(width, lambda console: render_device(report, console))
    tables = read_tables(text)
    assert tables["cores"].column("max MHz") == ["3187"] * 8 and tables["temperatures"].column("°C") == ["41.2"]
    assert "87%, 30.5 °C, Charging, powered by USB" in one_line(text.replace("│", " "))


# --- the layout itself ----------------------------------------------------------------------

def test_names_are_shortened_in_the_middle_keeping_their_block_and_end():
    assert shorten("inception5b.branch2.1.0", 30) == "inception5b.branch2.1.0"
    assert shorten("inception4e.branch3.1.conv", 23) == "inception4e…nch3.1.conv"
    assert shorten("inception4e.branch3.1.conv", 16) == "incepti…3.1.conv"
    assert shorten("a_very_long_operator_name", 16) == "a_very_…tor_name"
    assert all(len(shorten("inception4e.branch3.1.conv", width)) == width for width in range(16, 27))


def test_where_nothing_fits_every_character_folds_onto_further_lines():
    table = FittedTable([Column("device"), *(Column(f"value {index}", NUMBER) for index in range(4))], "values")
    table.add_row("pixel-8-lab-2", "123,456,789 µs", "98.7 MiB", Pair("12.345", "67.890"), "+12.3%")
    text = render(30, lambda console: console.print(table))
    lines = [_cells(line, "│") for line in text.splitlines() if line.startswith("│")]
    assert ["".join(cells) for cells in zip(*lines)] == [
        "pixel-8-lab-2", "123,456,789µs", "98.7MiB", "12.345→67.890", "+12.3%"]
    assert "…" not in text
