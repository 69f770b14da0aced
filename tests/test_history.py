"""`rebirth history`: every stored run of a device and model as a series, with steps and drifts found in it, as an
offline page (checked in Chromium), Markdown and terminal lines."""

import dataclasses
import datetime
import math
import random

import pytest

from rebirth import cli
from rebirth.contract import Latency
from rebirth.contract.history import DRIFT, STEP
from rebirth.contract.notes import BUSY, Note
from rebirth.results import save_baseline, save_run
from rebirth.results.changes import find_changes
from rebirth.usecases.history import history, median_interval
from tests.browser import Browser, find_chromium
from tests.synthetic import synthetic_profile

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _series(count: int, noise: float = 0.015, step: float = 0.0, at: int = 0, drift: float = 0.0,
            seed: int = 0) -> list[float]:
    """p50s in ms: flat at 2 ms with ``noise``, a ``step`` from run ``at`` on, a ``drift`` per 10 runs."""
    rng = random.Random(seed)
    return [2.0 * (1 + step) ** (index >= at) * (1 + drift) ** (index / 10) * math.exp(rng.gauss(0, noise))
            for index in range(count)]


def test_a_flat_series_has_no_change_and_a_planted_step_and_drift_are_found_where_they_are():
    assert find_changes(_series(100, seed=1)) == []
    steps = find_changes(_series(100, step=0.05, at=60, seed=2))
    assert [(change.kind, change.start) for change in steps] == [(STEP, 60)]
    assert 0.03 < steps[0].size < 0.07
    drifts = find_changes(_series(100, drift=0.01, seed=3))
    assert [change.kind for change in drifts] == [DRIFT]
    assert 0.06 < drifts[0].size < 0.14  # 1% per 10 runs over 99 runs: +10%
    assert find_changes([2.0, 0.0, 2.0, 2.0, 2.0, 2.0]) == [] and find_changes([1.0, 2.0]) == []


def test_the_interval_of_a_median_holds_it_and_narrows_with_more_samples():
    rng = random.Random(0)
    few, many = [rng.gauss(10, 1) for _ in range(20)], [rng.gauss(10, 1) for _ in range(400)]
    for samples in (few, many):
        low, high = median_interval(samples)
        middle = sorted(samples)[len(samples) // 2]
        assert low < middle < high
    assert median_interval(many)[1] - median_interval(many)[0] < median_interval(few)[1] - median_interval(few)[0]
    assert median_interval([3.0]) == (3.0, 3.0)


def _profile(p50: float, seed: int, device: str = "pixel-8", source: str = "zoo:synthetic", busy: bool = False):
    profile = synthetic_profile(ops=40, samples=30, seed=seed, device=device, source=source)
    raw = [value * p50 / profile.latency.p50 for value in profile.latency.raw]
    profile = dataclasses.replace(profile, latency=Latency.from_samples(raw))
    if busy:
        profile = dataclasses.replace(profile, noise=(Note(BUSY, "the device was busy: other work took 80% of its "
                                                               "CPU"),))
    return profile


HOSTILE = "<img src=x onerror=alert(1)>.pte"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two devices' series of 60 nightly runs: pixel-8 steps up 6% at run 40 (commit c040...), with run 20 saved
    as a baseline and runs 10 and 50 flagged busy (and 40% slower); s6 drifts up 1% every 10 runs, under a model
    with a hostile name."""
    root = tmp_path_factory.mktemp("store")
    stepping, drifting = _series(60, step=0.06, at=40, seed=4), _series(60, drift=0.01, seed=5)
    for index in range(60):
        when = (START + datetime.timedelta(days=index)).isoformat(timespec="seconds")
        busy = index in (10, 50)
        save_run(_profile(stepping[index] * (1.4 if busy else 1.0), index, busy=busy), root,
                 commit=f"c{index:03d}" + "0" * 36, time_run=when)
        save_run(_profile(drifting[index], 100 + index, device="galaxy-s6", source=HOSTILE), root,
                 commit=f"d{index:03d}" + "0" * 36, time_run=when)
        if index == 20:
            save_baseline(root, "main")
    return root


def test_the_history_finds_the_step_and_the_drift_and_leaves_the_busy_runs_out(store):
    found = history(store)
    by_device = {series.devices[0]: series for series in found.series}
    stepping, drifting = by_device["pixel-8"], by_device["galaxy-s6"]
    assert [(change.kind, change.commit[:4]) for change in stepping.changes] == [(STEP, "c040")]
    assert [change.kind for change in drifting.changes] == [DRIFT]
    assert [point.commit[:4] for point in stepping.points if point.flags] == ["c010", "c050"]
    assert [point.baselines for point in stepping.points if point.baselines] == [("main",)]
    assert all(point.p50_low_ms <= point.p50_ms <= point.p50_high_ms for point in stepping.points)
    assert stepping.noise is not None and 0.005 < stepping.noise < 0.04
    frame = found.to_dataframe()
    assert len(frame) == 120 and list(frame[frame.change == STEP].commit.str[:4]) == ["c040"]


def test_history_writes_a_page_markdown_and_lines(store, tmp_path, capsys):
    page, summary = tmp_path / "history.html", tmp_path / "history.md"
    assert cli.main(["history", "--store", str(store), "-o", str(page), "--summary", str(summary)]) == 0
    out = capsys.readouterr().out
    assert "2 series, 1 step, 1 drift" in out and "step at c040" in out
    text = summary.read_text()
    assert text.splitlines()[0] == "**rebirth history: 2 series, 1 step, 1 drift**"
    # the hostile name is escaped in the table and in a code span in the lines, never markup
    assert all(text[at - 1] in "\\`" for at in range(len(text)) if text.startswith("<img", at)), text
    html = page.read_text()
    assert HOSTILE not in html  # escaped in the page
    assert cli.main(["history", "--store", str(store), "--device", "nowhere"]) == 2
    assert "no stored runs that match" in capsys.readouterr().err


@pytest.fixture(scope="module")
def page(store, tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "history.html"
    assert cli.main(["history", "--store", str(store), "-o", str(path)]) == 0
    with Browser(find_chromium()) as browser:
        opened = browser.open(path.as_uri(), ready="document.body.dataset.charts === 'ready'")
        yield opened, {
            "panels": opened.evaluate("document.querySelectorAll('section.series').length"),
            "annotations": opened.evaluate("Array.from(document.querySelectorAll('.annotation-text'))"
                                           ".map(e => e.textContent)"),
            "titles": opened.evaluate("Array.from(document.querySelectorAll('section.series h2'))"
                                      ".map(e => e.textContent)"),
            "traces": opened.evaluate("Array.from(document.querySelectorAll('.chart'))"
                                      ".map(e => (e._fullData || []).map(t => t.name))"),
            "drawn": opened.evaluate("Array.from(document.querySelectorAll('.chart'))"
                                     ".map(e => e.querySelectorAll('g.trace').length)"),
            "images": opened.evaluate("document.querySelectorAll('main img').length"),
        }


@pytest.mark.slow
def test_the_page_draws_each_series_with_its_change_points_offline_and_names_as_text(page):
    opened, seen = page
    assert seen["panels"] == 2
    assert any(text.startswith("+") and "step at c040" in text for text in seen["annotations"]), seen
    assert any("drift from d000" in text for text in seen["annotations"]), seen
    assert any(HOSTILE in title for title in seen["titles"])  # shown as text ...
    assert seen["images"] == 0  # ... never rendered
    stepping = next(names for names in seen["traces"] if "flagged noisy" in names)
    assert {"p50", "p50 95% interval", "flagged noisy", "baseline", "peak RSS"} <= set(stepping)
    assert all(drawn >= 4 for drawn in seen["drawn"]), seen["drawn"]
    assert opened.errors == [] and opened.dialogs == []
    assert all(url.startswith(("file:", "data:", "blob:")) for url in opened.requests), opened.requests


def test_terminal_lines_list_every_change_and_count_the_quiet_series_when_there_are_many():
    from rebirth.contract.history import History, HistoryChange, HistoryPoint, HistorySeries
    from rebirth.reports.history import history_lines

    point = HistoryPoint(1, "2026-01-01T00:00:00+00:00", "c" * 40, "s6", 2.0, 1.9, 2.1, None)
    quiet = [HistorySeries(f"fp{index}", "m@xnnpack", (point,)) for index in range(25)]
    change = HistoryChange(STEP, 0, 0, 0.05, "a" * 40, point.time, 6.0)
    changed = HistorySeries("fp", "slow.pte@xnnpack", (point,), (change,))
    lines = history_lines(History("store", (*quiet, changed)))
    assert lines[0] == "store: 26 series, 1 step, 0 drifts"
    assert lines[1].startswith("slow.pte@xnnpack on s6: 1 run, latest p50 2.000 ms")
    assert lines[2] == "  +5.0% step at aaaaaaaaaa (2026-01-01)"
    assert lines[3:] == ["25 more series without a change point (-o or --summary lists them)"]
    assert len(history_lines(History("store", (*quiet[:3], changed)))) == 1 + 2 + 3


def test_a_page_draws_the_latest_runs_of_a_long_series_and_the_change_points_in_them(store):
    from rebirth.reports.history import render_history, series_figure

    found = history(store)
    stepping = next(series for series in found.series if "pixel-8" in series.devices)
    figure = series_figure(stepping, 30)
    p50 = next(trace for trace in figure["data"] if trace["name"] == "p50")
    assert len(p50["x"]) == 30 and p50["customdata"][0][1] == stepping.points[30].number
    assert [note["text"].split()[-1] for note in figure["layout"]["annotations"]] == ["c040000"]
    assert len(series_figure(stepping, 15)["layout"]["annotations"]) == 0  # the step at run 40 is before the window
    assert len(series_figure(stepping)["data"][2]["x"]) == 60
    assert "60 runs (the latest 30 drawn: --page-runs)" in render_history(found, 30)
    assert len(render_history(found, 30)) < len(render_history(found, None))
