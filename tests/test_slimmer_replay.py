"""A recorded plan replayed (``--plan FILE``): the steps a slim.json kept, made again in its order whatever a new
profile ranks first, each still judged; what the model no longer offers is skipped and said."""

import json

import pytest
import torch

from rebirth.contract.slim import MergeRecord, Part, SlimRecord
from tests.digitsnet import times_by_work

NO_INT8 = ("int8",)


def _steps(result) -> list[tuple]:
    return [(m.kind, m.layers, m.detail, m.parts) for m in result.merges]


def test_a_replayed_plan_makes_the_same_steps_whatever_the_profile_ranks(trained_digits_net, tmp_path):
    from rebirth.slimmer.replay import load_replay
    from rebirth.slimmer.slim import SlimOptions, slim

    model, loaders, _ = trained_digits_net
    inputs = (torch.randn(1, 3, 16, 16),)
    options = dict(skip=NO_INT8, min_gain=0.05, max_accuracy_drop=1.0)
    recorded = slim(model, inputs, times_by_work(model, inputs), loaders, trained=True,
                    options=SlimOptions(**options))
    compressions = [m for m in recorded.merges if m.parts]
    assert compressions and all(len(m.parts) >= 1 and m.kind in ("low_rank", "reduce_channels") for m in compressions)
    SlimRecord("x.py:make", "xnnpack", None, merges=recorded.merges).save(tmp_path / "slim.json")
    replay = load_replay(tmp_path)  # the folder: its slim.json
    assert replay.merges == recorded.merges and not replay.int8

    # another profile, and a --min-gain under which nothing is worth a fine-tuning (a compression's layers are
    # chosen by the work they save, so a profile alone no longer stops one)
    flat, unworthy = dict.fromkeys(times_by_work(model, inputs), 1e-06), {**options, "min_gain": 0.9}
    fresh = slim(model, inputs, flat, loaders, trained=True, options=SlimOptions(**unworthy))
    assert not [m for m in fresh.merges if m.parts]  # these alone would compress nothing
    said: list[str] = []
    replayed = slim(model, inputs, flat, loaders, trained=True, options=SlimOptions(**unworthy, replay=replay),
                    say=said.append)
    assert _steps(replayed) == _steps(recorded), said
    assert replayed.macs_after == recorded.macs_after and replayed.allocation is not None
    assert replayed.allocation.rule.startswith(f"replayed from {tmp_path}") and not replayed.allocation.revisits
    for step in replayed.merges:
        if not step.exact:  # judged again, on the bound, as any step
            assert step.evidence is not None and step.evidence.within and step.evidence.bound is not None


def test_a_step_the_model_no_longer_offers_is_skipped_and_said(trained_digits_net):
    from rebirth.slimmer.replay import Replay
    from rebirth.slimmer.slim import SlimOptions, slim

    model, loaders, _ = trained_digits_net
    inputs = (torch.randn(1, 3, 16, 16),)
    plan = (MergeRecord("merge_pool_into_conv", ("conv9", "pool9"), False),
            MergeRecord("low_rank", ("conv2",), False, parts=(Part(("conv2",), "Tucker-2 ranks 1x1 of 64x32"),)))
    said: list[str] = []
    result = slim(model, inputs, times_by_work(model, inputs), loaders, trained=True, say=said.append,
                  options=SlimOptions(replay=Replay("old/slim.json", plan, int8=False)))
    assert result.merges == () and result.macs_after == result.macs_before
    missing = [s for s in result.skipped if s.code == "not_in_model"]
    assert [(s.kind, s.layers) for s in missing] == [("merge_pool_into_conv", ("conv9", "pool9"))]
    assert "old/slim.json" in missing[0].reason
    assert any(line.startswith("not replayed: low_rank: this model does not offer conv2 Tucker-2") for line in said)
    assert result.quantization is not None and result.quantization.code == "not_in_plan"
    assert "the plan (old/slim.json) made no int8 program" in (result.quantization.reason or "")


@pytest.mark.parametrize("content, words", [(None, "no such slim.json"), ('{"profile": 1}', "not a slim.json"),
                                            ("{trunc", "not JSON")])
def test_a_plan_that_is_not_a_slim_json_is_one_line_and_exit_2(trained_digits_net, tmp_path, capsys, content, words):
    from rebirth import cli

    _, _, source = trained_digits_net
    plan = tmp_path / "plan.json"
    if content is not None:
        plan.write_text(content)
    code = cli.main(["slim", f"{source}:make", "--plan", str(plan), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and f"--plan {plan}: " in err and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_slim_json_of_version_8_loads_with_compressions_that_list_no_offers(tmp_path):
    step = MergeRecord("low_rank", ("a",), False, detail="1 layer")
    data = SlimRecord("x", "xnnpack", None, merges=(step,)).to_dict()
    for merge in data["merges"]:
        del merge["parts"]
    (tmp_path / "slim.json").write_text(json.dumps(dict(data, schema_version=8)))
    assert SlimRecord.load(tmp_path / "slim.json").merges[0].parts == ()
