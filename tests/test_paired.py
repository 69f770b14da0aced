"""Two programs measured side by side: alternating runs (A B, B A, ...), blocks added until the question is
answered or the budget spent; noise said beside the numbers it spoils; regressions judged from the pairs."""

import json
import math
import statistics
import subprocess
import sys

import pytest

from rebirth import cli
from rebirth.contract import CoreState, DeviceInfo, DeviceState, Latency
from rebirth.contract.checks import IMPROVEMENT, PASS, REGRESSION, UNDECIDED
from rebirth.contract.paired import (
    DECIDED,
    Budget,
    PairedComparison,
    Question,
)
from rebirth.devices.local import LocalDevice
from rebirth.profiler import ProfileOptions, prepare
from rebirth.profiler.noise import noise_flags
from rebirth.profiler.paired import Interval, compare_programs, decide, interval

OPTIONS = ProfileOptions(warmup=1, iterations=8, threads=1)


@pytest.fixture(scope="module")
def programs(firenet_ptes):
    return {backend: prepare(str(pte), backend) for backend, pte in firenet_ptes.items()}


def test_the_interval_is_a_t_interval_over_the_blocks_log_ratios():
    logs = [math.log(1.10), math.log(1.12), math.log(1.08), math.log(1.10)]
    found = interval(logs)
    assert found.ratio == pytest.approx(math.exp(sum(logs) / 4))
    half = 3.182 * statistics.stdev(logs) / 2  # t(0.975, 3 degrees of freedom) x stdev / sqrt(4)
    assert math.log(found.high / found.ratio) == pytest.approx(half, rel=0.01)
    assert interval([0.1]).high == math.inf  # one block says nothing of the noise


@pytest.mark.parametrize("low, high, outcome", [
    (1.07, 1.13, REGRESSION), (0.98, 1.03, PASS), (0.80, 0.90, IMPROVEMENT), (0.99, 1.08, None), (1.02, 1.06, None),
])
def test_a_threshold_is_decided_only_when_the_interval_is_on_one_side(low, high, outcome):
    decided = decide(Interval(math.sqrt(low * high), low, high), Question(threshold=0.05))
    assert (decided[0] if decided else None) == outcome


def test_a_precision_is_decided_once_the_interval_is_that_narrow():
    assert decide(Interval(1.0, 0.99, 1.01), Question(precision=0.02))[0] == DECIDED
    assert decide(Interval(1.0, 0.95, 1.05), Question(precision=0.02)) is None


def test_runs_alternate_and_the_faster_program_is_found(programs):
    with LocalDevice() as device:
        result = compare_programs(programs["portable"], programs["xnnpack"], device, OPTIONS,
                                  Question(precision=0.5), Budget(max_runs=20, min_blocks=3))
    paired = result.comparison
    assert [run.side for run in paired.runs][:6] == ["a", "b", "b", "a", "a", "b"]
    assert paired.outcome == DECIDED and paired.blocks >= 3 and paired.speedup > 2  # XNNPACK over portable
    assert paired.speedup_interval[0] > 1 and "within ±50%" in paired.reason
    assert result.a.model.backend == "portable" and result.b.model.backend == "xnnpack"
    assert result.a.summary.attributed_share > 0.9 and result.b.ops  # traced after the pairs, for the report


def test_an_unreachable_precision_is_undecided_and_says_the_budget(programs):
    with LocalDevice() as device:
        paired = compare_programs(programs["xnnpack"], programs["xnnpack"], device, OPTIONS,
                                  Question(precision=1e-6), Budget(max_runs=8, min_blocks=2)).comparison
    assert paired.outcome == UNDECIDED and len(paired.runs) == 8 and paired.blocks == 4
    assert "undecided after 8 runs" in paired.reason and "wider than ±0%" in paired.reason


def test_the_time_budget_stops_the_blocks(programs):
    ticks = iter(range(0, 10_000, 100))  # every look at the clock: 100 s later
    with LocalDevice() as device:
        paired = compare_programs(programs["xnnpack"], programs["xnnpack"], device, OPTIONS,
                                  Question(precision=1e-6), Budget(max_runs=40, max_seconds=250),
                                  clock=lambda: next(ticks)).comparison
    assert paired.outcome == UNDECIDED and paired.blocks < 20


def busy_loop() -> subprocess.Popen:
    """A process that keeps one core busy until killed; returned once it is spinning (past interpreter start)."""
    spin = "import sys; sys.stdout.write('on\\n'); sys.stdout.flush()\nwhile True: pass"
    hog = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    assert hog.stdout is not None and hog.stdout.readline() == "on\n"
    return hog


def test_a_program_against_itself_stays_near_one_while_a_busy_loop_comes_and_goes(programs):
    """Drift between runs (here a busy loop for the middle blocks) hits both sides of a block alike."""
    hog = []

    def toggle(text: str) -> None:
        if text.startswith("block 2 "):
            hog.append(busy_loop())
        if text.startswith("block 5 ") and hog:
            hog.pop().kill()

    try:
        with LocalDevice() as device:
            paired = compare_programs(programs["portable"], programs["portable"], device, OPTIONS,
                                      Question(precision=1e-6), Budget(max_runs=16, min_blocks=8),
                                      stage=toggle).comparison
    finally:
        for process in hog:
            process.kill()
    assert paired.blocks == 8 and any(run.noise for run in paired.runs)  # the busy loop was seen
    ratios = [math.log(b.latency_ms / a.latency_ms) for a, b in zip(paired.side("a"), paired.side("b"))]
    assert len(ratios) == 8
    strict = interval(ratios, confidence=0.999)  # a 95% interval misses 1 in 20 honest runs by construction
    assert strict.low < 1 < strict.high, paired.runs


def test_a_busy_device_is_flagged_beside_its_latency(programs):
    hogs = [busy_loop(), busy_loop()]
    try:
        with LocalDevice() as device:
            from rebirth.profiler import profile_program

            # 30 executions: a window of a second or more, well past the shortest one whose load is judged
            measured = profile_program(programs["portable"], device, ProfileOptions(warmup=1, iterations=30, threads=1))
    finally:
        for hog in hogs:
            hog.kill()
    assert measured.device.other_load is not None and measured.device.other_load > 0.3, measured.device.other_load
    assert "busy" in [note.code for note in measured.noise]


def test_noise_flags_name_what_moved_the_numbers():
    wide = Latency.from_samples([1.0, 1.5, 1.0, 2.0, 1.0])
    hot = DeviceInfo("s6", "adb").with_run(
        DeviceState((CoreState(0, 2_000_000, 2_000_000),), 40.0, 1000, 2000),
        DeviceState((CoreState(0, 2_000_000, 1_000_000),), 60.0, 1900, 3000), runner_cpu_ticks=300)
    assert hot.other_load == pytest.approx(0.6)  # 900 busy ticks of 1000, 300 of them the runner's
    flags = noise_flags(wide, hot)
    assert [flag.code for flag in flags] == ["wide_spread", "busy", "clocks_moved", "throttled"]
    assert flags[1].text == "the device was busy: other work took 60% of its CPU during the run"
    assert noise_flags(Latency.from_samples([1.0, 1.01, 0.99]), DeviceInfo("local", "local")) == ()


def test_rebirth_compare_prints_the_paired_speed_up_and_writes_its_record(firenet_ptes, tmp_path, capsys):
    record, page = tmp_path / "comparison.json", tmp_path / "report.html"
    code = cli.main(["compare", str(firenet_ptes["portable"]), str(firenet_ptes["xnnpack"]), "--iterations", "6",
                     "--threads", "1", "--precision", "50", "--json", str(record), "--html", str(page)])
    out = capsys.readouterr().out
    assert code == 0, out
    paired = PairedComparison.load(record)
    assert f"{paired.speedup:.2f}×" in out and "speed-up (paired)" in out and f"{paired.blocks} blocks" in out
    assert json.loads(record.read_text())["schema_version"] == 2 and "speed-up (paired)" in page.read_text()


def test_rebirth_compare_undecided_is_exit_3_and_said(firenet_ptes, capsys):
    code = cli.main(["compare", str(firenet_ptes["xnnpack"]), str(firenet_ptes["xnnpack"]), "--iterations", "4",
                     "--precision", "0.0001", "--max-runs", "8"])
    out = capsys.readouterr().out
    assert code == 3 and "undecided after 8 runs" in out and "speed-up (paired): undecided" in out


def test_regress_side_by_side_passes_an_unchanged_program_and_writes_junit(firenet_ptes, tmp_path, capsys):
    pte = str(firenet_ptes["xnnpack"])
    code = cli.main(["regress", "--ab", pte, pte, "--fail", "p50:50%", "--fail", "peak_rss:50%", "--iterations", "6",
                     "--junit", str(tmp_path / "r.xml")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.rstrip().endswith("1 pass")
    junit = (tmp_path / "r.xml").read_text()
    assert 'name="p50:50%"' in junit and 'name="peak_rss:50%"' in junit and 'failures="0"' in junit


def test_regress_side_by_side_catches_a_slower_candidate(firenet_ptes, capsys):
    code = cli.main(["regress", "--ab", str(firenet_ptes["xnnpack"]), str(firenet_ptes["portable"]),
                     "--fail", "p50:20%", "--iterations", "4", "--threads", "1"])
    assert code == 1 and "regression" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["regress"], "name either --baseline"),
    (["regress", "--ab", "a.pte", "b.pte", "--baseline", "x"], "name either --baseline"),
    (["regress", "--ab", "a.pte", "b.pte", "--fail", "p90:5%"], "one latency check, on p50"),
    (["regress", "--baseline", "x", "--stf", "https://stf.lab"], "--stf chooses devices to measure on, with --ab"),
    (["regress", "--baseline", "x", "--count", "2"], "--count chooses devices to measure on, with --ab"),
    (["regress", "--ab", "a.pte", "b.pte", "--stf", "--group", "lab"], "--group and --stf: choose the devices one way"),
    (["regress", "--ab", "a.pte", "b.pte", "--count", "2"], "--stf-select and --count choose phones to lease"),
])
def test_regress_mode_mistakes_are_one_line(argv, message, capsys):
    assert cli.main(argv) == 2 and message in capsys.readouterr().err


def test_stored_runs_teach_the_run_to_run_noise(tmp_path):
    """Three earlier runs that moved 10% from each other: a 6% change is within the noise, not a regression."""
    from rebirth.results import save_baseline, save_run
    from rebirth.usecases.regress import regress_stored
    from tests.synthetic import synthetic_profile

    store = tmp_path / "store"
    for seed, scale in ((1, 1.0), (2, 1.1), (3, 0.92)):
        save_run(scaled(synthetic_profile(ops=40, samples=40, seed=seed), scale), store)
    save_baseline(store, "main")
    save_run(scaled(synthetic_profile(ops=40, samples=40, seed=4), 1.06), store)
    verdicts = regress_stored(store, "main", checks=["p50:5%"])
    latency = verdicts[0].results[0]
    assert latency.status != "regression" and "learned from 3 stored runs" in latency.reason


def scaled(profile, factor: float):
    import dataclasses

    raw = [value * factor for value in profile.latency.raw]
    return dataclasses.replace(profile, latency=Latency.from_samples(raw))


def test_a_json_written_by_compare_round_trips(tmp_path, programs):
    with LocalDevice() as device:
        paired = compare_programs(programs["xnnpack"], programs["xnnpack"], device, OPTIONS,
                                  Question(precision=0.5), Budget(max_runs=8, min_blocks=2)).comparison
    paired.save(tmp_path / "c.json")
    assert PairedComparison.load(tmp_path / "c.json") == paired
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(Exception, match="not a rebirth comparison"):
        PairedComparison.load(tmp_path / "bad.json")


def test_a_run_too_short_for_clock_ticks_is_not_judged_busy():
    short = DeviceInfo("local", "local").with_run(
        DeviceState((), None, 1000, 2000), DeviceState((), None, 1020, 2040), runner_cpu_ticks=5)
    assert short.other_load is None  # 15 of 40 ticks would read as 38% "other work"
    assert noise_flags(Latency.from_samples([1.0, 1.01, 0.99]), short) == ()


def test_runs_of_a_fast_model_are_lengthened_unless_someone_chose_the_count():
    from types import SimpleNamespace

    from rebirth.devices.base import RunDefaults
    from rebirth.profiler.measure import ProfileOptions
    from rebirth.profiler.paired import MIN_RUN_MS, lengthened

    said = []
    device = SimpleNamespace(defaults=RunDefaults())
    fast = lengthened(ProfileOptions(), device, 0.3, said.append)
    assert fast.iterations == 667 and fast.iterations * 0.3 >= MIN_RUN_MS and "667 executions" in said[0]
    assert lengthened(ProfileOptions(), device, 40.0, said.append).iterations is None  # 20 x 40 ms is long enough
    assert lengthened(ProfileOptions(iterations=20), device, 0.3, said.append).iterations == 20
    assert lengthened(ProfileOptions(), SimpleNamespace(defaults=RunDefaults(iterations=30)), 0.3,
                       said.append).iterations is None
    assert lengthened(ProfileOptions(), device, 0.0001, said.append).iterations == 1000
