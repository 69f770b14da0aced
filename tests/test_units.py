"""Statistics, the taxonomy, the runner log and the Profile record, without a device."""

import json

import numpy as np
import pytest

from rebirth.contract import stats
from rebirth.contract.errors import InputError
from rebirth.contract.profile import Latency, Profile
from rebirth.devices import runlog
from rebirth.profiler.taxonomy import RULES, Rule, classify, normalize, register


def test_percentile_matches_numpy():
    samples = [5.0, 1.0, 3.0, 2.5, 9.0, 4.0, 7.5]
    for q in (0, 10, 50, 90, 100):
        assert stats.percentile(samples, q) == pytest.approx(np.percentile(samples, q))


def test_trimmed_mean_cuts_outliers_from_both_ends():
    assert stats.trimmed_mean([1.0] * 8 + [100.0, -100.0], 0.1) == pytest.approx(1.0)


def test_latency_from_samples():
    latency = Latency.from_samples([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert latency.mean == pytest.approx(5.0)
    assert latency.std == pytest.approx(np.std([2, 4, 4, 4, 5, 5, 7, 9], ddof=1))
    assert latency.cv == pytest.approx(latency.std / 5.0)
    assert latency.p50 == pytest.approx(4.5)
    assert latency.min == 2.0


@pytest.mark.parametrize("name, expected", [
    ("native_call_convolution.out", ("conv", "tensor")),
    ("native_call_addmm.out", ("linear", "tensor")),
    ("native_call__native_batch_norm_legit_no_training.out", ("batch_norm", "non_tensor")),
    ("native_call_max_pool2d_with_indices.out", ("max_pool", "non_tensor")),
    ("native_call_cat.out", ("concat", "non_tensor")),
    ("native_call_permute_copy.out", ("transpose", "non_tensor")),
    ("Convolution (NHWC, F32) IGEMM #12", ("conv", "tensor")),
    ("Convolution (NHWC, F32) DWConv #1", ("depthwise_conv", "tensor")),
    ("Fully Connected (NC, F32) GEMM #2", ("linear", "tensor")),
    ("Max Pooling (NHWC, F32) #2", ("max_pool", "non_tensor")),
    ("Average Pooling (NHWC, F32) Average Pooling #1", ("avg_pool", "non_tensor")),
    ("Copy (NC, X32) #1", ("copy", "non_tensor")),
    ("Transpose (ND, X32) #1", ("transpose", "non_tensor")),
    ("Static Reshape (NC) #1", ("reshape", "non_tensor")),
    ("DELEGATE_CALL", ("framework", "framework")),
    ("Method::execute", ("framework", "framework")),
    ("native_call_some_new_op.out", ("some_new_op", "non_tensor")),
])
def test_taxonomy_covers_aten_and_xnnpack_names(name, expected):
    assert classify(name) == expected


def test_source_op_wins_over_the_xnnpack_name():
    # XNNPACK runs an unfoldable BatchNorm as a depthwise convolution: it is still a BatchNorm.
    assert classify("Convolution (NHWC, F32) DWConv #1", "aten._native_batch_norm_legit_no_training") == \
        ("batch_norm", "non_tensor")
    assert classify("Fully Connected (NC, F32) GEMM #1", "aten.convolution") == ("conv", "tensor")
    assert classify("Copy (NC, X32) #3", "aten.cat") == ("concat", "non_tensor")


def test_registered_rules_take_precedence():
    register(Rule(r"my_custom_gemm", "custom_gemm", "tensor"))
    try:
        assert classify("native_call_my_custom_gemm.out") == ("custom_gemm", "tensor")
    finally:
        RULES.pop(0)
    assert normalize("aten::avg_pool2d.out") == "avg_pool2d"


NATIVE_LOG = """I 00:00:00.001 executorch:executor_runner.cpp:120] Model file model.pte is loaded.
I 00:00:00.002 executorch:executor_runner.cpp:180] Model loaded in 12.500000 ms.
I 00:00:01.002 executorch:executor_runner.cpp:300] Model executed successfully 10 time(s) in 950.250000 ms.
"""


def test_runlog_reads_the_native_runner():
    log = runlog.parse_log(NATIVE_LOG)
    assert (log.load_ms, log.executions, log.total_ms) == (12.5, 10, 950.25)
    assert log.execution_ms == () and log.peak_rss_bytes is None


def test_runlog_reads_the_python_runner_and_missing_operators():
    text = ("Baseline RSS: 1000 bytes\nModel loaded in 1.0 ms.\nWarm-up 1/3 in 9.0 ms.\n"
            "Execution 2/3 in 2.0 ms.\nExecution 3/3 in 3.0 ms.\nPeak RSS: 5000 bytes\n")
    log = runlog.parse_log(text)
    assert log.execution_ms == (2.0, 3.0)
    assert (log.baseline_rss_bytes, log.peak_rss_bytes) == (1000, 5000)
    assert runlog.progress_of("Execution 2/3 in 2.0 ms.") == (2, 3)
    stderr = "[method.cpp:822] Missing operator: [3] aten::avg_pool3d.out\n" * 2
    assert runlog.missing_operators(stderr) == ["aten::avg_pool3d.out"]


def test_profile_load_rejects_what_is_not_a_profile(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a rebirth profile"):
        Profile.load(bad)
    with pytest.raises(InputError, match="no such profile"):
        Profile.load(tmp_path / "missing.json")
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(InputError, match="newer than this rebirth"):
        Profile.load(newer)


def test_a_version_1_profile_loads_with_its_warnings_and_noise_as_coded_notes(tmp_path):
    from tests.synthetic import synthetic_profile

    old = synthetic_profile().to_dict()
    old.update(schema_version=1, warnings=["no ETRecord for m.pte: ops are profiled without their source layers",
                                           "something new"],
               noise=["the device was busy: other work took 40% of its CPU during the run"])
    (tmp_path / "v1.json").write_text(json.dumps(old))
    loaded = Profile.load(tmp_path / "v1.json")
    assert [note.code for note in loaded.warnings] == ["no_etrecord", "other"]
    assert [(note.code, str(note)) for note in loaded.noise] == [("busy", old["noise"][0])]
    assert loaded.schema_version == 2


def test_any_record_loads_by_what_it_holds(tmp_path):
    import rebirth
    from tests.synthetic import synthetic_profile

    synthetic_profile().save(tmp_path / "p.json")
    assert isinstance(rebirth.load(tmp_path / "p.json"), Profile)
    frame = rebirth.load(tmp_path / "p.json").to_dataframe()
    assert list(frame.columns[:5]) == ["index", "name", "op_type", "category", "layer"]
    assert len(frame) == len(synthetic_profile().ops)
    (tmp_path / "x.json").write_text("[1]")
    with pytest.raises(InputError, match="not a rebirth record"):
        rebirth.load(tmp_path / "x.json")


def test_json_is_written_atomically(tmp_path):
    from rebirth.contract.files import write_json_atomic

    path = tmp_path / "p.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"a": float("nan")})  # fails half-way through serialization
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


def make_op(index, op_type, category, ms, layer=None):
    from rebirth.contract.profile import OpRecord

    return OpRecord(index, f"op{index}", op_type, category, layer, ms, ms, ms, ms, 0.0)


def test_summary_tables_from_records_built_in_memory():
    from rebirth.contract.summary import summarize

    ops = [make_op(0, "conv", "tensor", 6.0, "a"), make_op(1, "max_pool", "non_tensor", 3.0, "b"),
           make_op(2, "conv", "tensor", 0.5, "c"), make_op(3, "framework", "framework", 0.5)]
    summary = summarize(ops)
    assert summary.total_ms == 10.0
    assert (summary.tensor_share, summary.non_tensor_share, summary.framework_share) == (0.65, 0.3, 0.05)
    assert summary.attributed_share == 1.0
    assert [(r.op_type, r.count) for r in summary.by_op_type] == [("conv", 2), ("max_pool", 1), ("framework", 1)]
    assert [round(r.cumulative_share, 3) for r in summary.by_op_type] == [0.65, 0.95, 1.0]
    assert [r.layer for r in summary.top_layers] == ["a", "b", "c"]


def test_throttling_is_flagged_when_a_core_ends_below_its_maximum():
    from rebirth.contract import CoreState, DeviceInfo, DeviceState

    before = DeviceState((CoreState(0, 2_000_000, 2_000_000, "performance"),), 40.0)
    hot = DeviceState((CoreState(0, 2_000_000, 1_200_000, "performance"),), 70.0)
    info = DeviceInfo("s6", "adb").with_run(before, hot)
    assert info.throttled is True
    assert (info.temperature_c_start, info.temperature_c_end) == (40.0, 70.0)
    assert info.cores[0].cur_freq_khz_end == 1_200_000
    assert DeviceInfo("s6", "adb").with_run(before, before).throttled is False
    assert DeviceInfo("x", "local").with_run(DeviceState(), DeviceState()).throttled is None


def test_output_fidelity_scores_a_copy_100_and_a_constant_0_however_close_to_the_average():
    import torch

    from rebirth.slimmer.judge import fidelity, judged_by

    torch.manual_seed(0)
    reference = torch.randn(200, 10) + torch.tensor([5.0] + [0.0] * 9)  # predicts class 0 almost always
    assert fidelity(reference.clone(), reference) == 100.0
    assert fidelity(reference.mean(0, keepdim=True).expand_as(reference), reference) == 0.0
    assert 85 < fidelity(reference + 0.1 * torch.randn(200, 10), reference) < 95  # about 10% relative error
    assert judged_by(True, reference, 10)[0] == "fidelity"  # accurate or not, it predicts one or two classes
    spread = torch.randn(200, 10)
    assert judged_by(True, spread, 10) == ("top1", None)
    measure, why = judged_by(False, spread, 10)
    assert measure == "fidelity" and "no trained weights" in why


def test_a_fully_attributed_profile_is_exactly_100_percent_attributed_whatever_the_summing_order():
    from rebirth.contract.profile import NON_TENSOR, TENSOR, OpRecord
    from rebirth.contract.summary import summarize

    def op(index, category, ms, layer="conv"):
        return OpRecord(index, f"op{index}", "conv", category, layer or None, ms, ms, ms, ms, 0.0,
                        module_type="Conv2d")

    times = [0.02379646270918914, 0.054422922529595186, 0.03699551665480793, 0.06039200385961945,
             0.0625720304108054, 0.006552885923981311, 0.0013167991554874138]  # summed by category: 0.99999...
    ops = [op(i, TENSOR if i % 2 else NON_TENSOR, ms) for i, ms in enumerate(times)]
    assert summarize(ops).attributed_share == 1.0
    assert summarize([op(i, o.category, o.p50_ms, layer="") for i, o in enumerate(ops)]).attributed_share == 0.0
    half = [*ops, op(9, TENSOR, sum(times), layer="")]
    assert summarize(half).attributed_share == pytest.approx(0.5)
