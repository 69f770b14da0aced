"""The before/after report: the comparison model, the terminal view, and the HTML as a person sees it
in a real headless Chromium (loads offline without errors, charts drawn, names shown as text, tables sort)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import Counter
from html.parser import HTMLParser

import pytest
from rich.console import Console

from rebirth.contract.errors import InputError
from rebirth.contract.profile import Memory, Profile
from rebirth.contract.slim import SCHEMA_VERSION, SlimRecord
from rebirth.contract.summary import summarize
from rebirth.reports.compare import MERGED, ONLY_AFTER, ONLY_BEFORE, REGENERATED, REMOVED, Change, compare, speedup
from rebirth.reports.headline import headline_facts
from rebirth.reports.html import render_html, script_json, write_html
from rebirth.reports.terminal import render_comparison
from rebirth.reports.units import mib, ms
from tests.browser import Browser, find_chromium, png_pixels
from tests.synthetic import slim_document, slim_record, slimmed_pair, synthetic_profile

EVIL_LAYER = "<img src=x onerror=alert(1)>"
EVIL_DEVICE = "</script><script>alert(2)</script>"
EVIL_MODEL = "<b>bold</b> & <a href=https://example.com/x>link</a>"
EVIL_SCRIPT = "</script><img src=x onerror=alert(1)>"
EVIL_LAYERS = (EVIL_LAYER, EVIL_DEVICE, "<b>bold</b><br>&amp;", EVIL_SCRIPT)
CHARTS = ("latency", "categories", "layers", "memory")
READY = "document.body.dataset.charts === 'ready'"


def renamed(profile: Profile, layers: dict[str, str], device: str, source: str) -> Profile:
    """``profile`` with layers, the device and the model source renamed (summaries recomputed)."""
    ops = tuple(dataclasses.replace(op, layer=layers.get(op.layer, op.layer)) for op in profile.ops)
    return dataclasses.replace(profile, ops=ops, summary=summarize(ops),
                               device=dataclasses.replace(profile.device, name=device),
                               model=dataclasses.replace(profile.model, source=source))


@pytest.fixture(scope="module")
def pair():
    """A slimmed pair whose three slowest layers, device and model carry hostile names, and its slim.json."""
    before, after, slim = slimmed_pair(ops=200, samples=40)
    kept = {row.layer for row in after.summary.top_layers}
    names = dict(zip([row.layer for row in before.summary.top_layers if row.layer in kept], EVIL_LAYERS))
    assert len(names) == len(EVIL_LAYERS)
    before = dataclasses.replace(renamed(before, names, EVIL_DEVICE, EVIL_MODEL), warnings=(f"warned {EVIL_SCRIPT}",))
    return before, renamed(after, names, EVIL_DEVICE, EVIL_MODEL), slim


@pytest.fixture(scope="module")
def reports(pair, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reports")
    before, after, slim = pair
    return {"pair": write_html(folder / "pair.html", before, after, slim),
            "single": write_html(folder / "single.html", before)}


@pytest.fixture(scope="module")
def browser():
    with Browser(find_chromium()) as browser:
        yield browser


@pytest.fixture(scope="module")
def pair_page(browser, reports):
    return browser.open(reports["pair"].as_uri(), ready=READY)


@pytest.fixture(scope="module")
def single_page(browser, reports):
    return browser.open(reports["single"].as_uri(), ready=READY)


# --- comparison model ------------------------------------------------------------------------

def test_speedup_is_the_ratio_of_p50s_and_its_interval_contains_it():
    before, after, _ = slimmed_pair(ops=100, samples=50)
    spread = speedup(before.latency.raw, after.latency.raw, before.latency.p50, after.latency.p50)
    assert spread.value == pytest.approx(before.latency.p50 / after.latency.p50)
    assert spread.low < spread.value < spread.high
    assert spread.high - spread.low < 0.2 * spread.value
    assert speedup(before.latency.raw, after.latency.raw, before.latency.p50, after.latency.p50) == spread


def test_speedup_spread_widens_with_noise_and_collapses_without_it():
    steady = speedup([10.0] * 20, [5.0] * 20, 10.0, 5.0)
    assert (steady.low, steady.value, steady.high) == (2.0, 2.0, 2.0)
    noisy = speedup([8.0, 12.0] * 10, [4.0, 6.0] * 10, 10.0, 5.0)
    assert noisy.low < 2.0 < noisy.high
    assert speedup([1.0], [0.0], 1.0, 0.0) is None
    assert speedup([], [], 3.0, 2.0).low == 1.5


def test_change_is_none_safe():
    assert Change(100, 25).ratio == 0.25 and Change(100, 25).saving == 0.75
    assert Change(None, 25).ratio is None and Change(100, None).saving is None
    assert Change(0, 25).ratio is None


def test_headline_with_unknown_memory_and_no_slim():
    before, after, _ = slimmed_pair(ops=50, samples=10)
    blind = dataclasses.replace(after, memory=Memory(planned_bytes=after.memory.planned_bytes))
    comparison = compare(before, blind)
    assert comparison.headline.model_rss == Change(before.memory.model_rss_bytes, None)
    assert comparison.headline.accuracy is None
    facts = {fact.key: fact for fact in headline_facts(comparison)}
    assert facts["model_rss"].value.endswith("→ n/a") and facts["model_rss"].detail == ""
    assert facts["planned"].tone == "good"
    assert "accuracy" not in facts


def test_layers_are_lined_up_and_marked_with_what_the_slimmer_did():
    before, after, slim = slimmed_pair(ops=100)
    after = renamed(after, {"stage0.block5.conv": "stage0.fused"}, after.device.name, after.model.source)
    slim = slim_record(list(slim.merges[0].layers), list(slim.merges[0].learned),
                       merged=["stage0.block1.conv", "stage0.block2.conv"])
    rows = {row.layer: row for row in compare(before, after, slim).layers}
    assert rows["stage0.lrn3"].status == REMOVED and rows["stage0.lrn3"].after_ms is None
    assert rows["stage0.lrn3"].delta_ms == pytest.approx(-rows["stage0.lrn3"].before_ms)
    assert rows["stage0.block4.conv"].status == REGENERATED
    assert rows["stage0.block1.conv"].status == MERGED
    assert rows["stage1.lrn0"].status == ONLY_BEFORE
    assert rows["stage0.fused"].status == ONLY_AFTER and rows["stage0.fused"].before_ms is None
    assert rows["stage0.fused"].delta_ms == rows["stage0.fused"].after_ms
    assert list(rows)[:8] == ["stage0.block0.conv", "stage0.block1.conv", "stage0.block2.conv", "stage0.lrn3",
                              "stage0.block4.conv", "stage0.fused", "stage0.block5.conv", "stage0.block6.conv"]


def test_a_channel_cut_thins_its_layers_and_a_low_rank_step_decomposes_its_own():
    from rebirth.contract.slim import MergeRecord
    from rebirth.reports.compare import DECOMPOSED, THINNED, slim_marks

    _, _, slim = slimmed_pair(ops=100)
    steps = (MergeRecord("reduce_channels", ("stage0.block1.conv", "stage0.block2.conv"), False,
                         ("stage0.block2.conv",)),
             MergeRecord("low_rank", ("stage0.block4.conv",), False, ("stage0.block4.conv.0",)))
    marks = slim_marks(dataclasses.replace(slim, merges=steps))
    assert marks["stage0.block1.conv"] == THINNED and marks["stage0.block4.conv"] == DECOMPOSED
    assert marks["stage0.block2.conv"] == REGENERATED  # learned again after its inputs were cut


def test_single_profile_has_no_deltas():
    before = synthetic_profile(ops=50, samples=5)
    comparison = compare(before)
    assert comparison.headline.speedup is None and comparison.after is None
    assert all(row.delta_ms is None and row.after_ms is None for row in comparison.layers)
    assert all(row.delta_ms is None for row in comparison.op_types)
    assert [fact.key for fact in headline_facts(comparison)] == ["latency", "planned", "model_rss", "energy", "device"]


def test_op_types_and_categories_cover_both_sides():
    before, after, _ = slimmed_pair(ops=100)
    comparison = compare(before, after)
    only_before = {row.op_type for row in comparison.op_types if row.after is None}
    assert only_before == {"avg_pool", "pow", "mul", "add", "div"}
    conv = next(row for row in comparison.op_types if row.op_type == "conv")
    assert conv.delta_ms == pytest.approx(conv.after.ms - conv.before.ms)
    tensor = comparison.categories[0]
    assert tensor.before_ms == before.summary.tensor_ms and tensor.after_share == after.summary.tensor_share


def test_accuracy_is_top1_when_trained_else_agreement_only_for_old_records():
    before, after, slim = slimmed_pair(ops=50)
    accuracy = compare(before, after, slim).headline.accuracy
    assert accuracy.metric == "top1" and accuracy.delta == pytest.approx(-0.75)
    untrained = compare(before, after, slim_record([], [], trained=False)).headline.accuracy
    assert untrained.metric == "agreement" and untrained.delta is None and untrained.agreement == 96.0
    fact = next(fact for fact in headline_facts(compare(before, after, slim_record([], [], trained=False)))
                if fact.key == "accuracy")
    assert fact.value == "agreement 96.0%" and "top-1 not measured" in fact.detail
    assert compare(before, after).headline.accuracy is None


def test_a_model_judged_by_fidelity_shows_fidelity_and_why_never_an_accuracy():
    before, after, _ = slimmed_pair(ops=50)
    record = slim_document([], [], trained=False)
    record["accuracy"].update(metric="fidelity", fidelity=97.25, reference_classes=1, classes=10,
                              reason="the model predicts only 1 of 10 classes")
    comparison = compare(before, after, SlimRecord.from_dict(record))
    assert comparison.headline.accuracy.metric == "fidelity" and comparison.headline.accuracy.delta is None
    fact = next(fact for fact in headline_facts(comparison) if fact.key == "accuracy")
    assert fact.label == "output fidelity" and fact.value == "97.2%"
    assert "within 2.8%" in fact.detail and "only 1 of 10 classes" in fact.detail


def test_load_slim_reports_bad_files(tmp_path):
    with pytest.raises(InputError, match="no such"):
        SlimRecord.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not a slim.json"):
        SlimRecord.load(tmp_path / "bad.json")
    (tmp_path / "newer.json").write_text(json.dumps({**slim_document(["a"], ["b"]), "schema_version": 99}))
    with pytest.raises(InputError, match="newer than this rebirth"):
        SlimRecord.load(tmp_path / "newer.json")


def test_a_version_1_slim_json_is_migrated_and_saved_as_the_current_version(tmp_path):
    (tmp_path / "v1.json").write_text(json.dumps(slim_document(["a"], ["b"], merged=["c", "d"])))
    record = SlimRecord.load(tmp_path / "v1.json")
    assert record.merges[0].learned == ("b",) and record.merges[0].removed == ("a",)
    assert record.merges[1].kind == "merge_pool_into_conv" and record.merges[1].removed == ()
    assert record.accuracy.before.top1 == 91.25 and record.params.after == 990_000
    record.save(tmp_path / "v5.json")
    assert json.loads((tmp_path / "v5.json").read_text())["schema_version"] == SCHEMA_VERSION == 9
    assert SlimRecord.load(tmp_path / "v5.json") == record
    assert record.accuracy.fidelity is None and record.accuracy.reason is None  # not measured in version 1
    assert record.merges[0].macs_saved is None and record.merges[0].points_lost is None  # nor per-step savings


# --- terminal --------------------------------------------------------------------------------

def test_terminal_comparison_shows_the_headline_and_names_as_text(pair):
    before, after, slim = pair
    before = renamed(before, {"stage0.block0.conv": "[bold]x[/bold]"}, "phone", "m")
    after = renamed(after, {"stage0.block0.conv": "[bold]x[/bold]"}, "phone", "m")
    console = Console(record=True, width=160)
    render_comparison(before, after, slim, console=console, top=200)
    text = console.export_text()
    assert f"speed-up (unpaired): {before.latency.p50 / after.latency.p50:.2f}×" in text
    assert "two profiles taken apart" in text
    assert "top-1 accuracy: 91.2% → 90.5%" in text
    assert "[bold]x[/bold]" in text and EVIL_LAYER in text
    assert re.search(r"stage0\.lrn3 .* removed", text)


def test_a_quantized_model_shows_its_weights_and_what_int8_cost(pair):
    from rebirth.contract.slim import QuantizationRecord

    before, after, slim = pair
    before, after = (dataclasses.replace(p, memory=dataclasses.replace(p.memory, constant_bytes=size))
                     for p, size in ((before, 4 << 20), (after, 1 << 20)))
    step = QuantizationRecord("int8", True, ("conv", "fc"), 512, 91.25, 90.5, 4 << 20, 1 << 20)
    slim = dataclasses.replace(slim, quantization=step)
    console = Console(record=True, width=200)
    render_comparison(before, after, slim, console=console)
    text = console.export_text()
    assert "weights in the .pte: 4.0 MiB → 1.0 MiB (-75.0% vs before)" in text
    assert ("quantized to int8: 2 layers, calibrated on 512 training samples (post-training quantization); held-out "
            "top-1 91.2% -> 90.5%") in text
    refused = dataclasses.replace(step, applied=False, reason="1.20 points lost, over the 0.5 budget")
    page = render_html(before, after, dataclasses.replace(slim, quantization=refused))
    assert "not quantized to int8: 1.20 points lost, over the 0.5 budget" in page


# --- HTML file -------------------------------------------------------------------------------

def test_script_json_cannot_close_the_script_tag():
    data = {"name": EVIL_DEVICE, "other": "a & b <!-- c"}
    text = script_json(data)
    assert not set("<>&") & set(text)
    assert json.loads(text) == data


def test_file_is_self_contained(pair):
    from plotly.offline import get_plotlyjs

    page = render_html(*pair)
    assert get_plotlyjs() in page
    ours = page.replace(get_plotlyjs(), "")
    tags = _tags(ours)
    assert {tag for tag, _ in tags} == {"html", "head", "meta", "title", "style", "body", "main", "header", "h1", "p",
                                        "br", "section", "div", "h2", "h3", "table", "thead", "tbody", "tr", "th",
                                        "td", "script", "ul", "li", "strong"}
    assert [attrs for _, attrs in tags if {"src", "href"} & set(attrs)] == []
    assert EVIL_LAYER not in ours and EVIL_DEVICE not in ours and EVIL_SCRIPT not in ours
    assert ours.count("</script>") == 3  # the data, plotly.js and the page's script: no name closes one


def _tags(page: str) -> list[tuple[str, dict]]:
    """Every start tag of an HTML page with its attributes."""
    tags = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, dict(attrs)))

    Collector().feed(page)
    return tags


def test_write_html_replaces_the_file_atomically(pair, tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    assert write_html(target, pair[0]) == target
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert os.listdir(tmp_path) == ["report.html"]


# --- HTML in Chromium ------------------------------------------------------------------------

def test_page_loads_offline_without_errors(pair_page, single_page, reports):
    for page, path in ((pair_page, reports["pair"]), (single_page, reports["single"])):
        assert page.errors == []
        assert [url for url in page.requests if not url.startswith(("data:", "blob:"))] == [path.as_uri()]
        assert page.dialogs == []


def test_every_chart_renders(pair_page, single_page):
    for page, traces in ((pair_page, 2), (single_page, 1)):
        charts = page.evaluate("""Array.from(document.querySelectorAll('.chart')).map(chart => {
            const svg = chart.querySelector('.main-svg'); const box = svg ? svg.getBoundingClientRect() : {};
            return {id: chart.id, width: box.width || 0, height: box.height || 0,
                    traces: (chart._fullData || []).length, drawn: chart.querySelectorAll('g.trace').length};
        })""")
        assert [chart["id"] for chart in charts] == [f"chart-{name}" for name in CHARTS]
        for chart in charts:
            assert chart["width"] > 300 and chart["height"] > 100, chart
            assert chart["drawn"] >= 1, chart
        by_id = {chart["id"]: chart for chart in charts}
        assert by_id["chart-latency"]["traces"] == by_id["chart-layers"]["traces"] == traces
        assert by_id["chart-categories"]["traces"] == 3


def test_hostile_names_show_as_text(pair_page):
    text = pair_page.evaluate("document.body.innerText")
    assert all(name in text for name in (*EVIL_LAYERS, EVIL_DEVICE, EVIL_MODEL, f"before: warned {EVIL_SCRIPT}"))
    assert pair_page.evaluate("document.querySelectorAll('img, a[href], b').length") == 0
    assert pair_page.evaluate("document.scripts.length") == 3
    ticks = pair_page.evaluate("Array.from(document.querySelectorAll('#chart-layers .ytick text'))"
                               ".map(t => t.textContent)")
    assert set(EVIL_LAYERS) <= set(ticks)
    for name in EVIL_LAYERS:
        assert f"{name} (Conv2d, kept)" in _hover_layer(pair_page, ticks.index(name))
    assert pair_page.dialogs == []


def _hover_layer(page, index: int) -> str:
    """The hover label plotly shows for the ``index``-th bar of the layer chart."""
    return page.evaluate(f"""new Promise(done => {{ const chart = document.getElementById('chart-layers');
        Plotly.Fx.hover(chart, [{{curveNumber: 0, pointNumber: {index}}}]);
        setTimeout(() => done(chart.querySelector('.hoverlayer').textContent), 100); }})""")


def test_headline_matches_the_comparison(pair_page, pair):
    before, after, _ = pair
    facts = pair_page.evaluate("Object.fromEntries(Array.from(document.querySelectorAll('.fact'))"
                               ".map(f => [f.id, f.querySelector('.value').textContent]))")
    assert facts["fact-speedup"] == f"{before.latency.p50 / after.latency.p50:.2f}×"
    assert facts["fact-planned"] == f"{mib(before.memory.planned_bytes)} → {mib(after.memory.planned_bytes)}"
    assert facts["fact-accuracy"] == "91.2% → 90.5%"
    expected = {fact.key: fact.value for fact in headline_facts(compare(*pair))}
    assert facts == {f"fact-{key}": value for key, value in expected.items()}


def test_single_profile_page(single_page, pair):
    assert single_page.evaluate("document.querySelector('#fact-latency .value').textContent") == \
        ms(pair[0].latency.p50)
    headers = single_page.evaluate("Array.from(document.querySelectorAll('#table-layers th')).map(t => t.textContent)")
    assert headers == ["#", "layer", "module", "ms"]


def test_tables_sort_when_a_header_is_clicked(pair_page):
    column = """(title) => { const table = document.getElementById('table-layers');
        const index = Array.from(table.tHead.rows[0].cells).findIndex(th => th.textContent === title);
        return Array.from(table.tBodies[0].rows).map(row => row.cells[index].textContent); }"""
    click = "(title) => Array.from(document.querySelectorAll('#table-layers th'))" \
            ".find(th => th.textContent === title).dispatchEvent(new MouseEvent('click', {bubbles: true}))"

    def sort(title: str) -> list[str]:
        return pair_page.evaluate(f"(({click})({json.dumps(title)}), ({column})({json.dumps(title)}))")

    times = [float(value) for value in sort("ms before")]
    assert times == sorted(times) and times[0] < times[-1]
    times = [float(value) for value in sort("ms before")]
    assert times == sorted(times, reverse=True)
    after = sort("ms after")
    missing = [index for index, value in enumerate(after) if value == "–"]
    assert missing and missing == list(range(len(after) - len(missing), len(after)))
    names = sort("layer")
    assert names == sorted(names, key=str.lower) and names != sort("layer")


def test_page_fits_a_laptop_screen(pair_page):
    assert pair_page.evaluate("document.documentElement.scrollWidth") <= 1366


def test_screenshot_is_not_blank(browser, pair_page):
    ink, colours = _ink(pair_page.screenshot(scale=0.25))
    assert ink > 0.05 and colours > 50, (ink, colours)
    blank = browser.open("data:text/html,<body></body>")
    assert _ink(blank.screenshot(scale=0.25)) == (0.0, 1)


def _ink(png: bytes) -> tuple[float, int]:
    """The share of pixels that are not the background colour, and the number of distinct colours."""
    width, _, rows = png_pixels(png)
    channels = len(rows[0]) // width
    counts = Counter(row[x:x + 3] for row in rows for x in range(0, len(row), channels))
    total = sum(counts.values())
    return 1 - max(counts.values()) / total, len(counts)
