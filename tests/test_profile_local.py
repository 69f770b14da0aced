"""The foundation's "done when": a .pte exported with plain ExecuTorch, from a network the
zoo does not have, profiled on ``local`` for both backends, with and without its ETRecord."""


import pytest

from rebirth.contract.profile import FRAMEWORK, NON_TENSOR, TENSOR, Profile
from rebirth.profiler import ProfileOptions
from rebirth.usecases.profiling import profile
from tests.foreign import FireNet

OPTIONS = ProfileOptions(warmup=2, iterations=12)
MODULE_NAMES = {name for name, _ in FireNet().named_modules() if name}


@pytest.fixture(scope="module")
def profiles(firenet_ptes, tmp_path_factory):
    """{(backend, with_etrecord): Profile}."""
    results = {}
    for backend, pte in firenet_ptes.items():
        results[(backend, True)] = profile(str(pte), OPTIONS)
        bare = tmp_path_factory.mktemp(f"bare_{backend}") / pte.name
        bare.write_bytes(pte.read_bytes())
        results[(backend, False)] = profile(str(bare), OPTIONS)
    return results


KEYS = [(b, e) for b in ("portable", "xnnpack") for e in (True, False)]


@pytest.mark.parametrize("key", KEYS, ids=lambda k: f"{k[0]}-{'etrecord' if k[1] else 'bare'}")
def test_op_times_add_up_to_the_measured_latency(profiles, key):
    result = profiles[key]
    summed = sum(op.p50_ms for op in result.ops)
    assert summed == pytest.approx(result.summary.total_ms)
    # In every run the op rows lie inside Method::execute and fill it (a delegate call's own overhead
    # is a row too), so their means add up to execute's mean whatever the noise; percentiles do not
    # add up like that (a sum of per-op minima is below any run's total). Time outside every op (a
    # preemption between two ops on a busy machine) counts in execute only: measured here 0.4-0.6%
    # quiet, up to 1.8% with two busy loops on the two cores.
    means = sum(op.mean_ms for op in result.ops)
    assert 0.95 * result.latency.mean <= means <= 1.005 * result.latency.mean, (means, result.latency.mean)


@pytest.mark.parametrize("key", KEYS, ids=lambda k: f"{k[0]}-{'etrecord' if k[1] else 'bare'}")
def test_non_tensor_share_is_right_for_the_ops_present(profiles, key):
    result = profiles[key]
    expected = sum(op.p50_ms for op in result.ops if op.category == NON_TENSOR) / result.summary.total_ms
    assert result.summary.non_tensor_share == pytest.approx(expected)
    for op in result.ops:
        if op.op_type in ("conv", "linear", "matmul", "depthwise_conv"):
            assert op.category == TENSOR, op
        elif op.op_type == "framework":
            assert op.category == FRAMEWORK, op
        else:
            assert op.category == NON_TENSOR, op
    types = {op.op_type for op in result.ops}
    assert {"conv", "max_pool"} <= types
    assert "linear" in types or any(op.source_op and "linear" in op.source_op for op in result.ops)
    if key[0] == "portable":
        assert {"batch_norm", "relu", "concat", "softmax"} <= types
        assert not any(op.name == "OPERATOR_CALL" for op in result.ops), "wrapper events double counted"


@pytest.mark.parametrize("backend", ["portable", "xnnpack"])
def test_planned_memory_equals_the_pte_buffers(profiles, firenet_ptes, backend):
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(firenet_ptes[backend].read_bytes()).program
    sizes = program.execution_plan[0].non_const_buffer_sizes
    assert profiles[(backend, True)].memory.planned_bytes == sum(sizes) > 0


@pytest.mark.parametrize("backend", ["portable", "xnnpack"])
def test_the_native_runner_measures_the_models_own_memory(profiles, firenet_ptes, backend):
    result = profiles[(backend, True)]
    memory = result.memory
    assert result.device.runner_kind == "native" and result.device.runner.endswith("executor_runner")
    assert memory.baseline_rss_bytes < 32 << 20  # a C++ process, not Python with torch (~220 MB)
    assert memory.peak_rss_bytes > memory.baseline_rss_bytes
    # The weights are most of the file: FireNet's 27k float parameters, in the constant segment.
    assert 0.8 * firenet_ptes[backend].stat().st_size < memory.constant_bytes < firenet_ptes[backend].stat().st_size


@pytest.mark.parametrize("backend", ["portable", "xnnpack"])
def test_the_python_runner_sees_the_same_ops_and_layers(profiles, firenet_ptes, backend):
    """The fallback runner (no C++ compiler) runs the same runtime: same op rows, categories and layers."""
    from rebirth.devices.local import LocalDevice
    from rebirth.profiler import prepare, profile_program

    native = profiles[(backend, True)]
    with LocalDevice(runner="python") as device:
        python = profile_program(prepare(str(firenet_ptes[backend]), backend), device, OPTIONS)
    assert [(op.name, op.category, op.layer) for op in python.ops] == \
        [(op.name, op.category, op.layer) for op in native.ops]
    assert python.device.runner_kind == "python" and python.memory.baseline_rss_bytes > 100 << 20


@pytest.mark.parametrize("backend", ["portable", "xnnpack"])
def test_with_etrecord_every_op_has_its_source_layer(profiles, backend):
    result = profiles[(backend, True)]
    assert result.summary.attributed_share >= 0.95
    layers = {op.layer for op in result.ops if op.layer}
    assert layers <= MODULE_NAMES
    assert {"stem", "pool1", "fire1.squeeze", "fire1.expand3", "head"} <= layers
    assert not result.warnings


def test_xnnpack_ops_are_attributed_to_layers_of_their_kind(profiles):
    result = profiles[("xnnpack", True)]
    kinds = {"conv": {"Conv2d"}, "max_pool": {"MaxPool2d"}, "linear": {"Linear"}, "concat": {"Fire"},
             "global_avg_pool": {"AdaptiveAvgPool2d"}, "softmax": {"Softmax"}}
    checked = 0
    for op in result.ops:
        if op.backend == "XnnpackBackend" and op.op_type in kinds and op.category != FRAMEWORK:
            assert op.module_type in kinds[op.op_type], op
            checked += 1
    assert checked >= 10
    transposes = [op for op in result.ops if op.name.startswith("Transpose")]
    assert transposes and all(op.op_type == "transpose" and op.category == NON_TENSOR for op in transposes)


def test_a_batch_norm_xnnpack_cannot_fold_is_its_own_non_tensor_layer(tmp_path):
    """After an activation a BatchNorm cannot be folded into the convolution before it: XNNPACK runs it as a
    depthwise convolution, which is the BatchNorm's time (non-tensor), not the next layer's."""
    import torch
    from torch import nn

    from rebirth.contract.quiet import quiet
    from tests.foreign import export_plain

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1))
    with torch.no_grad():
        model.train()(torch.randn(4, 3, 16, 16))
    with quiet():
        pte = export_plain(model.eval(), (torch.randn(1, 3, 16, 16),), "xnnpack", tmp_path / "bn.pte")
    ops = profile(str(pte), ProfileOptions(warmup=1, iterations=3)).ops
    norm = [op for op in ops if op.layer == "2"]
    assert [(op.op_type, op.category, op.module_type) for op in norm] == [("batch_norm", NON_TENSOR, "BatchNorm2d")]
    assert "DWConv" in norm[0].name
    assert [op.op_type for op in ops if op.layer == "3"] == ["conv", "transpose"]


@pytest.mark.parametrize("backend", ["portable", "xnnpack"])
def test_without_etrecord_ops_are_profiled_without_layers(profiles, backend):
    result = profiles[(backend, False)]
    assert all(op.layer is None for op in result.ops)
    assert result.summary.attributed_share == 0
    assert [note.code for note in result.warnings] == ["no_etrecord"]
    assert {op.op_type for op in result.ops} >= {"conv", "max_pool"}


def test_backend_is_read_from_the_pte(profiles):
    assert profiles[("portable", True)].model.backend == "portable"
    assert profiles[("xnnpack", True)].model.backend == "xnnpack"


def test_latency_statistics_come_from_the_timed_runs(profiles):
    latency = profiles[("xnnpack", True)].latency
    assert len(latency.raw) == OPTIONS.iterations
    assert latency.min <= latency.p10 <= latency.p50 <= latency.p90 <= max(latency.raw)
    assert latency.load_ms > 0 and latency.first_ms > 0


def test_profile_json_has_the_fields_the_project_relies_on(profiles, tmp_path):
    path = tmp_path / "p.json"
    profiles[("xnnpack", True)].save(path)
    import json

    data = json.loads(path.read_text())
    assert data["schema_version"] == 2
    assert data["latency_ms"]["p50"] > 0
    assert data["memory"]["planned_bytes"] > 0
    assert data["memory"]["peak_rss_bytes"] >= data["memory"]["baseline_rss_bytes"] > 0
    assert data["summary"]["non_tensor_share"] > 0
    assert data["device"]["name"] == "local"
    op = data["ops"][0]
    assert {"name", "op_type", "category", "layer", "p50_ms", "share"} <= set(op)
    assert Profile.load(path) == profiles[("xnnpack", True)]
