"""`--trace`: a run as a timeline, from real ETDumps of rebirth's runner, written as a Chrome trace and read back
by Chrome DevTools' trace engine (a real consumer, offline once npm installed it: tests/trace_engine.py) and by
a strict check against the trace-event format's specification."""

import dataclasses
import itertools
import json

import pytest

from rebirth import cli
from rebirth.contract.device import Sample
from rebirth.contract.timeline import CALL, DELEGATED, KERNEL, Execution, Slice, Timeline
from rebirth.devices import open_device
from rebirth.profiler import ProfileOptions, Timelines, prepare, profile_program, read_timeline
from rebirth.profiler.measure import run_request
from rebirth.reports.chrome_trace import chrome_trace, write_trace
from tests.trace_engine import check_trace_format, devtools_tree

WARMUP, ITERATIONS = 2, 6
OPTIONS = ProfileOptions(warmup=WARMUP, iterations=ITERATIONS)


@pytest.fixture(scope="module")
def etdumps(firenet_ptes, tmp_path_factory):
    """FireNet run on local by rebirth's runner, portable (kernels in operator calls) and XNNPACK (ops in delegate
    calls): ``{backend: (ETDump kept, the runner's own timing of each execution)}``."""
    runs = {}
    with open_device("local") as device:
        for backend in ("portable", "xnnpack"):
            program = prepare(str(firenet_ptes[backend]), backend)
            result = device.run(run_request(program, OPTIONS.resolved(device.defaults)),
                                tmp_path_factory.mktemp(backend))
            assert result.etdump_path is not None
            runs[backend] = result.etdump_path, result.log.execution_ms
    return runs


@pytest.fixture(scope="module")
def timelines(etdumps):
    return {backend: read_timeline(path, label=f"firenet {backend}", device="local", warmup=WARMUP)
            for backend, (path, _) in etdumps.items()}


@pytest.fixture(scope="module")
def timeline(timelines):
    return timelines["xnnpack"]


@pytest.fixture(scope="module")
def etdump(etdumps):
    return etdumps["xnnpack"]


def test_every_execution_is_there_and_its_times_are_nanoseconds(timeline, etdump):
    assert len(timeline.executions) == WARMUP + ITERATIONS
    assert [e.warmup for e in timeline.executions] == [True] * WARMUP + [False] * ITERATIONS
    logged = etdump[1][-ITERATIONS:]  # the runner's steady clock around each execution, in ms
    traced = [e.ms for e in timeline.executions[WARMUP:]]
    for ours, runner in zip(traced, logged):
        assert 0.5 * runner <= ours <= runner * 1.01 + 0.05, (traced, logged)
    starts = [e.start_ns for e in timeline.executions]
    assert starts == sorted(starts) and timeline.load is not None and timeline.load[1] <= starts[0]


@pytest.mark.parametrize("backend", ["portable", "xnnpack"])
def test_delegate_ops_and_kernels_nest_in_their_calls_and_calls_in_execute(timelines, backend):
    timeline = timelines[backend]
    kinds = {s.kind for e in timeline.executions for s in e.slices}
    assert kinds == ({CALL, KERNEL} if backend == "portable" else {CALL, DELEGATED})
    for execution in timeline.executions:
        calls = [s for s in execution.slices if s.kind == CALL]
        assert all(s.depth == 1 and execution.start_ns <= s.start_ns <= s.end_ns <= execution.end_ns for s in calls)
        for op in (s for s in execution.slices if s.depth == 2):
            wrapper = "DELEGATE_CALL" if op.kind == DELEGATED else "OPERATOR_CALL"
            assert any(c.name == wrapper and c.start_ns <= op.start_ns <= op.end_ns <= c.end_ns for c in calls), op
        for depth in (1, 2):
            level = sorted((s for s in execution.slices if s.depth == depth), key=lambda s: s.start_ns)
            assert all(a.end_ns <= b.start_ns for a, b in itertools.pairwise(level))
    names = {s.name for e in timeline.executions for s in e.slices if s.depth == 2}
    assert any(name.startswith("Convolution (NHWC" if backend == "xnnpack" else "native_call_convolution")
               for name in names), names


def test_devtools_trace_engine_reads_every_slice_nested_as_rebirth_wrote_it(timelines, tmp_path):
    path = tmp_path / "trace.json"
    summary = write_trace(path, [timelines["portable"], timelines["xnnpack"]])
    document = check_trace_format(path.read_text())
    slices = [e for e in document["traceEvents"] if e["ph"] == "X"]
    tree = devtools_tree(path)
    assert sorted(tree) == ["1", "2"]
    for pid in ("1", "2"):
        roots = tree[pid]["1"]
        assert {root["name"] for root in roots} == {"Method::execute", "Program::load_method"}
        executions = [root for root in roots if root["name"] == "Method::execute"]
        assert len(executions) == WARMUP + ITERATIONS
        assert sum(_count(root) for root in roots) == len([e for e in slices if e["pid"] == int(pid)])
        for execution in executions:
            for call in execution["children"]:
                assert call["name"] in ("DELEGATE_CALL", "OPERATOR_CALL"), call["name"]
                inside = _names_below(call)
                if call["name"] == "OPERATOR_CALL":
                    assert inside and all(name.startswith("native_call_") for name in inside)
                else:
                    assert inside and not any(name.endswith("_CALL") for name in inside)
    assert summary.executions == 2 * (WARMUP + ITERATIONS) and summary.bytes == path.stat().st_size


def _count(node) -> int:
    return 1 + sum(_count(child) for child in node["children"])


def _names_below(node) -> list[str]:
    return [name for child in node["children"] for name in [child["name"], *_names_below(child)]]


def test_the_cap_keeps_evenly_spaced_executions_and_the_slowest_and_says_so(etdump, timeline, tmp_path):
    per_execution = len(timeline.executions[0].slices)
    capped = read_timeline(etdump[0], label="firenet", device="local", warmup=WARMUP, max_slices=3 * per_execution)
    assert len(capped.executions) == len(timeline.executions) and capped.detailed == 3
    slowest = max(capped.executions, key=lambda e: e.ms)
    kept = [e.index for e in capped.executions if e.slices]
    assert slowest.index in kept and 0 in kept
    assert all(e.ms == full.ms for e, full in zip(capped.executions, timeline.executions))
    summary = write_trace(tmp_path / "capped.json", [capped])
    line = summary.line()
    assert f"{len(timeline.executions)} executions" in line and "ops of 3 kept" in line and "slowest" in line
    meta = json.loads((tmp_path / "capped.json").read_text())["otherData"]["processes"][0]
    assert meta["executions_with_ops"] == 3 and meta["cap_op_slices"] == 3 * per_execution
    spans = [e for e in check_trace_format((tmp_path / "capped.json").read_text())["traceEvents"]
             if e["name"] == "Method::execute"]
    assert sum(1 for e in spans if e["args"].get("ops") == "not kept (cap)") == len(timeline.executions) - 3


def test_a_child_outside_its_parent_is_moved_inside_and_counted(tmp_path):
    from rebirth.profiler.etdump import RunData, RunEvent
    from rebirth.profiler.timeline import _execution

    def event(name, start, end, instruction=0, delegate=None):
        return RunEvent(True, None if delegate else name, 0, instruction, -1, delegate, start, end)

    run = RunData("Execute", -1, (event(None, 900, 1300, delegate="Convolution #1"),  # starts before the call
                                  event(None, 1250, 1500, delegate="Add #1"),  # overlaps it and the call's end
                                  event("DELEGATE_CALL", 1000, 1400), event("Method::execute", 950, 1600, -1)))
    (start, end), slices, clamped = _execution(run)
    assert (start, end) == (950, 1600) and clamped == 2
    ops = [(s.name, s.start_ns, s.end_ns) for s in slices if s.depth == 2]
    assert ops == [("Convolution #1", 1000, 1300), ("Add #1", 1300, 1400)]


def test_counter_tracks_come_from_the_runs_samples_and_none_from_empty_ones(firenet_ptes, tmp_path):
    samples = (Sample(0.0, rss_bytes=50_000_000, temperature_c=41.5), Sample(0.05, rss_bytes=61_000_000,
                                                                            temperature_c=42.0, freq_khz=1_800_000),
               Sample(0.1, rss_bytes=62_500_000, current_ua=350_000.0, voltage_uv=3_900_000.0))
    program = prepare(str(firenet_ptes["portable"]), "portable")
    timelines = Timelines()
    with open_device("local") as local:
        profile_program(program, _Sampled(local, samples), OPTIONS, timelines=timelines, role="A")
        profile_program(program, _Sampled(local, ()), OPTIONS, timelines=timelines, role="B")
        profile_program(program, local, OPTIONS, timelines=timelines, role="C")
    with_samples, without, sampled = timelines.items
    assert with_samples.label.startswith("A: ") and with_samples.samples == samples and without.samples == ()
    # The host samples its runner's memory as it runs (this one shows no thermal zone, clock or battery).
    assert sampled.samples and all(sample.rss_bytes for sample in sampled.samples if sample.t_s > 0)
    document = check_trace_format(json.dumps(chrome_trace(timelines.items)))
    counters = [e for e in document["traceEvents"] if e["ph"] == "C"]
    assert {e["pid"] for e in counters} == {1, 3}
    counters = [e for e in counters if e["pid"] == 1]
    by_name = {name: [(e["ts"], e["args"]) for e in counters if e["name"] == name]
               for name in {e["name"] for e in counters}}
    assert by_name["RSS"] == [(0, {"MB": 50.0}), (50000, {"MB": 61.0}), (100000, {"MB": 62.5})]
    assert by_name["temperature"] == [(0, {"°C": 41.5}), (50000, {"°C": 42.0})]
    assert by_name["clock"] == [(50000, {"MHz": 1800.0})]
    assert by_name["current"] == [(100000, {"mA": 350.0})] and by_name["voltage"] == [(100000, {"V": 3.9})]
    processes = document["otherData"]["processes"]
    assert processes[0]["counters"] == ["clock", "temperature", "RSS", "current", "voltage"]
    assert processes[1]["counters"] == [] and "approximate" in processes[0]["sample_alignment"]
    assert "RSS" in processes[2]["counters"]


class _Sampled:
    """The local device, its run results carrying the samples a test made instead of its own."""

    def __init__(self, device, samples):
        self._device, self._samples = device, samples

    def __getattr__(self, name):
        return getattr(self._device, name)

    def run(self, request, workdir, progress=None):
        return dataclasses.replace(self._device.run(request, workdir, progress), samples=self._samples)


def test_the_cli_profiles_with_trace_and_html_on_local(firenet_ptes, tmp_path, capsys):
    trace, html = tmp_path / "trace.json", tmp_path / "report.html"
    code = cli.profile_main([str(firenet_ptes["xnnpack"]), "--warmup", "1", "--iterations", "4", "--trace",
                             str(trace), "--html", str(html)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"trace written to {trace}" in out and "5 executions in 1 process" in out
    document = check_trace_format(trace.read_text())
    names = [e["args"]["name"] for e in document["traceEvents"] if e["name"] == "process_name"]
    assert names == [f"{firenet_ptes['xnnpack']} on local"]
    page = html.read_text()
    assert 'id="chart-timeline"' in page and '"timeline":{"data"' in page


def test_compare_writes_a_and_b_as_two_processes(firenet_ptes, tmp_path, capsys):
    trace = tmp_path / "ab.json"
    code = cli.main(["compare", str(firenet_ptes["portable"]), str(firenet_ptes["xnnpack"]), "--warmup", "1",
                     "--iterations", "3", "--max-runs", "4", "--max-time", "20", "--trace", str(trace)])
    out = capsys.readouterr().out
    assert code in (0, 3), out
    assert "8 executions in 2 processes" in out
    document = check_trace_format(trace.read_text())
    names = {e["pid"]: e["args"]["name"] for e in document["traceEvents"] if e["name"] == "process_name"}
    assert names == {1: f"A: {firenet_ptes['portable']} on local", 2: f"B: {firenet_ptes['xnnpack']} on local"}
    categories = {pid: {e["cat"] for e in document["traceEvents"] if e["ph"] == "X" and e["pid"] == pid}
                  for pid in names}
    assert "dlg" not in categories[1] and "dlg" in categories[2]  # portable has no delegate; XNNPACK has


@pytest.fixture
def hostile_report(tmp_path):
    from rebirth.reports.html import write_html
    from tests.synthetic import synthetic_profile

    evil = "<img src=x onerror=alert(1)>"
    slices = (Slice("DELEGATE_CALL", CALL, "framework", 1000, 9000, 1),
              Slice(evil, DELEGATED, "tensor", 1500, 5000, 2),
              Slice("</script><b>op</b>", DELEGATED, "non_tensor", 5000, 8000, 2))
    execution = Execution(0, False, 0, 10_000, slices)
    timeline = Timeline(evil, "local", (execution, dataclasses.replace(execution, index=1)))
    return write_html(tmp_path / "report.html", synthetic_profile(ops=40, samples=10), timelines=[timeline]), evil


def test_hostile_op_and_run_names_show_as_text_in_the_html_timeline(hostile_report):
    from tests.browser import Browser, find_chromium

    path, evil = hostile_report
    with Browser(find_chromium()) as browser:
        page = browser.open(path.as_uri(), ready="document.body.dataset.charts === 'ready'")
        ticks = page.evaluate("Array.from(document.querySelectorAll('#chart-timeline .ytick text'))"
                              ".map(t => t.textContent)")
        assert sorted(ticks) == [f"{evil} · first #0", f"{evil} · median #1"]
        for curve, name in ((1, evil), (2, "</script><b>op</b>")):  # curves: framework, tensor, non-tensor
            hover = page.evaluate(f"""new Promise(done => {{ const chart = document.getElementById('chart-timeline');
                Plotly.Fx.hover(chart, [{{curveNumber: {curve}, pointNumber: 0}}]);
                setTimeout(() => done(chart.querySelector('.hoverlayer').textContent), 100); }})""")
            assert name in hover, hover
        assert page.evaluate("document.querySelectorAll('img, b').length") == 0
        assert page.dialogs == [] and page.errors == []


@pytest.fixture
def two_phones(tmp_path, monkeypatch):
    """Two emulated phones running rebirth's runner, named p0 and p1 in the working directory's devices.toml."""
    from tests.phones import Phone

    phones = [Phone(tmp_path / f"phone{index}").start() for index in range(2)]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "devices.toml").write_text("".join(f'[devices.p{index}]\naddress = "{phone.address}"\n'
                                              for index, phone in enumerate(phones)))
    monkeypatch.chdir(cwd)
    yield phones
    for phone in phones:
        phone.stop()


def test_the_emulated_phone_profile_writes_its_trace(two_phones, firenet_ptes, tmp_path, capsys):
    trace = tmp_path / "phone.json"
    code = cli.profile_main(["--device", "p0", str(firenet_ptes["xnnpack"]), "--warmup", "1", "--iterations", "3",
                             "--trace", str(trace)])
    assert code == 0, capsys.readouterr().err
    assert "4 executions in 1 process" in capsys.readouterr().out
    document = check_trace_format(trace.read_text())
    assert [e["args"]["name"] for e in document["traceEvents"] if e["name"] == "process_name"] == [
        f"{firenet_ptes['xnnpack']} on p0"]
    assert {e["cat"] for e in document["traceEvents"] if e["ph"] == "X"} == {"run", "rt", "dlg"}
    roots = devtools_tree(trace)["1"]["1"]
    assert [root["name"] for root in roots].count("Method::execute") == 4


def test_a_farm_run_writes_one_process_per_device(two_phones, firenet_ptes, tmp_path, capsys):
    trace = tmp_path / "farm.json"
    code = cli.main(["farm", "run", str(firenet_ptes["portable"]), "--devices", "p0,p1", "--warmup", "1",
                     "--iterations", "2", "--store", str(tmp_path / "results"), "-q", "--trace", str(trace)])
    assert code == 0, capsys.readouterr().err
    document = check_trace_format(trace.read_text())
    names = sorted(e["args"]["name"] for e in document["traceEvents"] if e["name"] == "process_name")
    assert names == [f"{firenet_ptes['portable']} on p0", f"{firenet_ptes['portable']} on p1"]
    executions = [e for e in document["traceEvents"] if e["name"] == "Method::execute"]
    assert sorted(e["pid"] for e in executions) == [1, 1, 1, 2, 2, 2]


@pytest.mark.slow  # trains DigitsNet and slims it before the traced runs
def test_optimize_writes_its_traced_before_and_after_runs(trained_digits_net, tmp_path, capsys):
    _, _, source = trained_digits_net
    out, trace = tmp_path / "out", tmp_path / "optimize.json"
    code = cli.main(["optimize", f"{source}:make", "--data", f"{source}:loaders", "--skip",
                     "reduce_channels,low_rank,int8", "--warmup", "1", "--iterations", "3", "--precision", "50",
                     "--max-runs", "4", "--max-time", "30", "-o", str(out), "--trace", str(trace)])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"trace written to {trace}" in printed and "8 executions in 2 processes" in printed
    document = check_trace_format(trace.read_text())
    names = {e["pid"]: e["args"]["name"] for e in document["traceEvents"] if e["name"] == "process_name"}
    assert names == {1: f"before: {source}:make on local", 2: f"after: {out / 'slim.pte'} on local"}
    assert 'id="chart-timeline"' in (out / "report.html").read_text()
