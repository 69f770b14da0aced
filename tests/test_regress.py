"""Regression checks: parsing, judging synthetic Profiles, exit codes, JUnit XML and the pytest helper."""

from __future__ import annotations

import dataclasses
import io
import random
from xml.etree import ElementTree

import pytest
from rich.console import Console

from rebirth.contract import checks
from rebirth.contract.checks import (
    DEFAULT_CHECKS,
    FAILED,
    IMPROVEMENT,
    PASS,
    REGRESSION,
    UNDECIDED,
    UNKNOWN,
    Check,
    exit_code,
    failed,
    parse_check,
    parse_checks,
)
from rebirth.contract.errors import InputError
from rebirth.contract.paired import Budget, PairedComparison, PairedRun, Question
from rebirth.contract.profile import Latency, Profile
from rebirth.profiler.checks import assert_no_regression, judge, judge_paired, measure_run_noise
from rebirth.profiler.paired import Interval, decide
from rebirth.reports.junit import write_junit
from rebirth.reports.regress_view import render_verdicts
from tests.synthetic import synthetic_profile

BASE = synthetic_profile(samples=40)


def with_latency(profile: Profile, samples: list[float]) -> Profile:
    return dataclasses.replace(profile, latency=Latency.from_samples(samples))


def run(seed: int, samples: int = 40, scale: float = 1.0, cv: float = 0.01, level: float = 10.0) -> Profile:
    """A run of ``samples`` latencies around ``level`` ms with autocorrelated noise, times ``scale``."""
    generator = random.Random(seed)
    noise, values = 0.0, []
    for _ in range(samples):
        noise = 0.5 * noise + generator.gauss(0, cv)
        values.append(level * scale * (1 + noise))
    return with_latency(BASE, values)


def slower(profile: Profile, factor: float) -> Profile:
    """The same samples in reverse order times ``factor``: every percentile changes by exactly ``factor``."""
    return with_latency(profile, [sample * factor for sample in reversed(profile.latency.raw)])


def status(baseline: Profile, current: Profile, check: str, **options) -> str:
    return judge(baseline, current, [check], **options).results[0].status


@pytest.mark.parametrize("text, expected", [
    ("p50:5%", Check("p50", 0.05, "%")),
    (" P90 : 2.5% ", Check("p90", 0.025, "%")),
    ("peak_rss:3%", Check("peak_rss", 0.03, "%")),
    ("planned_memory:0%", Check("planned", 0.0, "%")),
    ("non_tensor_share:+2pt", Check("non_tensor_share", 2.0, "pt")),
    ("non_tensor_share:1.5pt", Check("non_tensor_share", 1.5, "pt")),
])
def test_parse_good_checks(text, expected):
    assert parse_check(text) == expected


@pytest.mark.parametrize("text", ["p50", "p50:5", "p50:-5%", "p51:5%", "latency:5%", "p50:5pt",
                                  "non_tensor_share:2%", "peak_rss:3MB", "", "p50:5%%"])
def test_parse_bad_checks_name_the_forms(text):
    with pytest.raises(InputError) as error:
        parse_check(text)
    message = str(error.value)
    assert "\n" not in message and repr(text) in message
    assert "p50:5%" in message or "non_tensor_share:+2pt" in message


def test_check_round_trips_to_text_and_defaults_apply():
    assert [str(check) for check in parse_checks()] == list(DEFAULT_CHECKS)
    assert str(parse_check("non_tensor_share:2pt")) == "non_tensor_share:+2pt"
    assert parse_checks(["p90:10%"]) == (Check("p90", 0.1, "%"),)


def test_ten_percent_slowdown_is_a_regression():
    result = judge(run(1), run(2, scale=1.10), ["p50:5%"]).results[0]
    assert result.status == REGRESSION
    assert 0.05 < result.change < 0.15 and result.low > 0 and result.p_value < 0.025
    assert result.before == pytest.approx(run(1).latency.p50)


def test_unchanged_runs_pass():
    assert [status(run(seed), run(seed + 100), "p50:5%") for seed in range(10)] == [PASS] * 10


def test_speedup_is_an_improvement():
    assert status(run(1), run(2, scale=0.8), "p50:5%") == IMPROVEMENT


def test_very_noisy_pair_is_undecided_not_pass_or_regression():
    noisy = run(1, cv=0.25)
    result = judge(noisy, slower(noisy, 1.06), ["p50:5%"]).results[0]
    assert result.status == UNDECIDED and result.code == "straddles_threshold"
    assert result.change == pytest.approx(0.06) and result.low < 0.05 < result.high
    assert "interval holds both" in result.reason


def test_big_change_on_three_samples_is_not_claimed():
    result = judge(run(1, samples=3), run(2, samples=3, scale=1.5), ["p50:5%"]).results[0]
    assert result.status == UNDECIDED and result.code == "few_samples"
    assert result.reason.startswith("3 latency samples, at least 5 per run needed")


def test_missing_latency_samples_are_unknown():
    empty = dataclasses.replace(BASE, latency=dataclasses.replace(BASE.latency, raw=()))
    result = judge(run(1), empty, ["p50:5%"]).results[0]
    assert result.status == UNKNOWN and result.code == "no_samples" and dict(result.detail)["side"] == "current run"


def test_run_noise_widens_the_interval():
    baseline = run(1)
    current = slower(baseline, 1.08)
    quiet = judge(baseline, current, ["p50:5%"], run_noise=0.0).results[0]
    drifting = judge(baseline, current, ["p50:5%"], run_noise=0.05).results[0]
    assert quiet.status == REGRESSION and drifting.status == UNDECIDED
    assert drifting.high - drifting.low > quiet.high - quiet.low


def paired(low: float, high: float) -> PairedComparison:
    runs = tuple(PairedRun(side, block, 10.0 * (1.0 if side == "a" else (low + high) / 2), 0.01)
                 for block in range(4) for side in ("a", "b"))
    return PairedComparison("a.pte", "b.pte", "local", "p50", Question(threshold=0.05), Budget(), runs, 4,
                            (low + high) / 2, low, high, 0.95, "", "", 1.0, True)


@pytest.mark.parametrize("low, high, expected", [
    (1.06, 1.09, REGRESSION), (0.98, 1.04, PASS), (0.90, 0.94, IMPROVEMENT), (1.01, 1.07, UNDECIDED),
    (0.97, 1.05, UNDECIDED),
])
def test_one_rule_decides_a_latency_check_stored_or_side_by_side(monkeypatch, low, high, expected):
    seen = []
    rule = checks.decide

    def spy(*args):
        seen.append(args)
        return rule(*args)

    monkeypatch.setattr(checks, "decide", spy)
    ab = judge_paired(paired(low, high), BASE, BASE, ["p50:5%"]).results[0]
    assert ab.status == expected and seen == [(low, high, 0.05)]
    stored = judge(run(1), slower(run(1), (low + high) / 2), ["p50:5%"], run_noise=0.0).results[0]
    assert len(seen) == 2 and seen[1] == (1 + stored.low, 1 + stored.high, 0.05)
    stopping = decide(Interval((low + high) / 2, low, high), Question(threshold=0.05))
    assert len(seen) == 3 and (stopping[0] if stopping else UNDECIDED) == expected


def test_judge_is_deterministic():
    assert judge(run(1), run(2, scale=1.04)) == judge(run(1), run(2, scale=1.04))


def test_measure_run_noise_from_repeated_runs():
    assert measure_run_noise([run(seed, level=10.0 + seed % 2) for seed in range(6)]) == pytest.approx(
        0.05, abs=0.02)
    with pytest.raises(ValueError):
        measure_run_noise([run(1)])


def with_memory(profile: Profile, **fields) -> Profile:
    return dataclasses.replace(profile, memory=dataclasses.replace(profile.memory, **fields))


def test_memory_uses_model_rss_above_the_idle_runner():
    bigger = with_memory(BASE, peak_rss_bytes=BASE.memory.peak_rss_bytes + 1_200_000)  # +4% of the 30 MB model
    result = judge(BASE, bigger, ["peak_rss:3%"]).results[0]
    assert result.status == REGRESSION and result.change == pytest.approx(0.04)
    assert result.before == 30_000_000 and "idle runner" in result.reason
    assert status(BASE, bigger, "peak_rss:5%") == PASS


def test_memory_falls_back_to_peak_rss_and_reports_missing_values():
    no_idle = with_memory(BASE, baseline_rss_bytes=None, peak_rss_bytes=BASE.memory.peak_rss_bytes + 1_200_000)
    result = judge(BASE, no_idle, ["peak_rss:1%"]).results[0]
    assert result.reason == "peak RSS" and result.change == pytest.approx(0.0133, abs=1e-3)
    unknown = judge(BASE, with_memory(BASE, peak_rss_bytes=None), ["peak_rss:3%"]).results[0]
    assert unknown.status == UNKNOWN and unknown.code == "no_value"
    assert unknown.reason == "the current run has no peak RSS"


def test_planned_memory_at_zero_percent():
    assert status(BASE, with_memory(BASE, planned_bytes=BASE.memory.planned_bytes + 64), "planned:0%") == REGRESSION
    assert status(BASE, BASE, "planned:0%") == PASS


def test_non_tensor_share_in_points():
    def share(value: float) -> Profile:
        return dataclasses.replace(BASE, summary=dataclasses.replace(BASE.summary, non_tensor_share=value))

    result = judge(share(0.30), share(0.325), ["non_tensor_share:+2pt"]).results[0]
    assert result.status == REGRESSION and result.change == pytest.approx(2.5)
    assert status(share(0.30), share(0.315), "non_tensor_share:+2pt") == PASS


def test_exit_codes_and_their_precedence():
    passing = judge(run(1), run(2), ["p50:5%"])
    regressed = judge(run(1), run(2, scale=1.2), ["p50:5%"])
    undecided = judge(run(1, samples=3), run(2, samples=3), ["p50:5%"])
    unreachable = failed("pixel-8", "zoo:googlenet", "device unreachable")
    assert unreachable.status == FAILED and regressed.status == REGRESSION
    assert exit_code([passing]) == 0
    assert exit_code([passing, regressed, unreachable, undecided]) == 1
    assert exit_code([passing, unreachable]) == 3
    assert exit_code([passing, undecided]) == 3
    assert exit_code([]) == 0


def test_assert_no_regression_names_the_metric():
    with pytest.raises(AssertionError, match=r"pixel-8 regressed:\n  p50:5%: regression, \+20\.0%"):
        assert_no_regression(run(1), slower(run(1), 1.2), "p50:5%", "peak_rss:3%")
    verdict = assert_no_regression(run(1), run(2), "p50:5%")
    assert verdict.status == PASS


def test_junit_is_valid_and_escaped(tmp_path):
    name = "<&\"'>"
    regressed = dataclasses.replace(judge(run(1), run(2, scale=1.2), ["p50:5%", "peak_rss:5%"]), device=name)
    noisy = judge(run(1, samples=3), run(2, samples=3), ["p50:5%"])
    broken = failed(name, "zoo:<model>", "adb: \x1b[31mconnection refused & gone")
    path = tmp_path / "junit.xml"
    write_junit(path, [regressed, noisy, broken])

    root = ElementTree.parse(path).getroot()
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "4", "failures": "1", "errors": "1", "skipped": "1"}
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert set(suites) == {name, "pixel-8"} and suites[name].get("tests") == "3"
    failure = suites[name].find("testcase[@name='p50:5%']/failure")
    assert failure is not None and "p50:5%: regression" in failure.get("message")
    error = suites[name].find("testcase[@classname='zoo:<model>']/error")
    assert error is not None and "connection refused & gone" in error.text
    assert "over" not in suites["pixel-8"].find("testcase/skipped").get("message")
    assert not list(tmp_path.glob(".*.tmp"))


def test_render_verdicts_shows_every_check_and_escapes_names():
    verdicts = [dataclasses.replace(judge(run(1), run(2, scale=1.2)), device="[bold]phone"),
                failed("lab-2", "zoo:googlenet", "unreachable")]
    console = Console(file=io.StringIO(), width=200, color_system=None)
    render_verdicts(verdicts, console)
    text = console.file.getvalue()
    assert "[bold]phone" in text and "regression" in text and "unreachable" in text
    assert text.count("[bold]phone") == 3 and "1 regression, 1 failed" in text
    # reasons are numbered notes under the table: each once, and the table fits an 80-column CI log
    narrow = Console(file=io.StringIO(), width=80, color_system=None)
    render_verdicts(verdicts * 2, narrow)
    lines = narrow.file.getvalue().splitlines()
    notes = [line for line in lines if line.startswith("[")]
    assert any(line.endswith("unreachable") for line in notes) and len(notes) == len(set(notes))
    assert all(len(line) <= 80 for line in lines)
    assert sum(1 for line in lines if "│" in line and "[2]" in line) == 2  # both copies point at one note


def test_the_markdown_summary_puts_the_verdict_first_and_renders_as_a_table_within_80_columns(tmp_path):
    from markdown_it import MarkdownIt

    from rebirth.reports.markdown import markdown_summary, write_summary

    long_model = "zoo:" + "a-very-long-model-name-" * 4 + "x"
    regressed = dataclasses.replace(judge(run(1), run(2, scale=1.2), ["p50:5%", "peak_rss:5%"]),
                                    device="lab|<b>phone</b>", model=long_model)
    passed = judge(run(1), run(3), ["p50:5%"])
    broken = failed("pixel-9", "zoo:googlenet", "adb: connection refused\nby the host [see](http://x)")
    write_summary(tmp_path / "summary.md", [regressed, passed, broken])
    text = (tmp_path / "summary.md").read_text()
    lines = text.splitlines()
    assert lines[0] == "**rebirth regress: REGRESSION: 3 checks on 3 devices (2 pass, 1 regression, 1 run failed)**"
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + 4 and all(len(line) <= 80 for line in table)  # header, rule, 3 checks, 1 failed run
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert html.count("<tr>") == 5 and html.count("<table>") == 1  # one table: header row and 4 rows
    assert "<b>" not in html and "<a " not in html  # names and errors are text, never markup or links
    assert long_model in text and "connection refused by the host" in text  # whole, below the table
    assert markdown_summary([passed]).startswith("**rebirth regress: PASS: 1 check on 1 device (1 pass)**")
    noisy = judge(run(1, samples=3), run(2, samples=3), ["p50:5%"])
    assert markdown_summary([noisy]).startswith("**rebirth regress: NO ANSWER:")


def test_a_name_shortened_for_the_table_never_cuts_an_escape_in_two():
    from rebirth.reports.markdown import markdown_summary

    verdict = dataclasses.replace(judge(run(1), run(3), ["p50:5%"]), device="|" * 60, model="<" * 70)
    table = [line for line in markdown_summary([verdict]).splitlines() if line.startswith("|")]
    assert all(len(line) <= 80 for line in table)
    cells = table[2].split(" | ")
    assert cells[0].startswith("| \\|") and "…" in cells[0] and "…" in cells[1]
    assert table[2].count(" | ") == 4  # five cells: no pipe of a name escaped its backslash


def busy(profile: Profile, share: int = 90) -> Profile:
    from rebirth.contract.notes import BUSY, Note

    return dataclasses.replace(profile, noise=(Note(BUSY, f"the device was busy: other work took {share}% of its "
                                                          "CPU"),))


@pytest.mark.parametrize("flag", ["baseline", "current"])
def test_a_run_flagged_busy_decides_no_latency_check_and_says_which(flag):
    """Issue 25: six runs flagged busy were still judged an improvement of 38%. A flagged run's latency may not be
    the model's alone: the check shows the change but is undecided (exit 3), naming the run and its flag; the
    memory check, which a busy CPU does not move, is still judged."""
    from rebirth.contract.checks import UNDECIDED, exit_code
    from rebirth.contract.errors import ExitStatus

    baseline, current = run(1), slower(run(1), 0.62)
    assert status(baseline, current, "p50:5%", run_noise=0.0) == "improvement"  # unflagged, it is decided
    if flag == "baseline":
        baseline = busy(baseline)
    else:
        current = busy(current)
    verdict = judge(baseline, current, ["p50:5%", "peak_rss:5%"], run_noise=0.0)
    latency, memory = verdict.results
    assert (latency.status, latency.code) == (UNDECIDED, "flagged_run")
    assert latency.change == pytest.approx(-0.38, abs=0.01)
    side = "baseline" if flag == "baseline" else "current run"
    assert f"the {side} was flagged: the device was busy: other work took 90% of its CPU" in latency.reason
    assert memory.status == "pass"
    assert verdict.status == UNDECIDED and exit_code([verdict]) == ExitStatus.NO_ANSWER


def test_runs_flagged_noisy_teach_nothing_of_the_run_to_run_noise():
    from rebirth.contract.stored import StoredRun
    from rebirth.usecases.regress import MIN_HISTORY, _noise

    def stored(profiles):
        return [StoredRun.of("", number, profile, profile.device.name, None, "2026-01-01T00:00:00+00:00")
                for number, profile in enumerate(profiles, 1)]

    key = ("fp", "model")
    quiet = [run(seed) for seed in range(MIN_HISTORY)]
    assert _noise(key, run(99), {key: stored(quiet)}, None).source == "learned"
    flagged = [busy(profile) for profile in quiet]
    noise = _noise(key, run(99), {key: stored([*flagged, quiet[0]])}, None)
    assert (noise.source, noise.history) == ("assumed", 1)
    # the run judged is not its own history
    assert _noise(key, quiet[0], {key: stored(quiet)}, None).history == MIN_HISTORY - 1
