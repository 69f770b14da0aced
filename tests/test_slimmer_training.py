"""The zoo's paper network learns the digits, and `rebirth slim` slims it within the budget:
the pipeline a user runs, on real data, with the real export at the end."""

import json

import pytest
import torch

from rebirth import cli
from rebirth.slimmer.data import digits
from rebirth.slimmer.train import evaluate

pytestmark = [pytest.mark.slow,  # trains the zoo's GoogLeNet and runs the whole optimize pipeline
              pytest.mark.timeout(1800)]  # minutes on a busy host


@pytest.fixture(scope="module")
def googlenet_small():
    from rebirth.slimmer.weights import trained, weights_path

    weights_path("googlenet-small").unlink(missing_ok=True)  # an earlier test of the session may have trained it
    said = []
    model, inputs, accuracy = trained("googlenet-small", seed=0, say=said.append)
    assert weights_path("googlenet-small").is_file() and "training zoo:googlenet-small" in said[0]
    return model, inputs, accuracy


def test_googlenet_small_learns_digits_to_90_percent_and_is_cached(googlenet_small):
    from rebirth.models.zoo import build
    from rebirth.slimmer.weights import trained

    _, _, accuracy = googlenet_small
    loaders = digits(64)
    assert accuracy.top1 >= 90 and accuracy.top5 >= accuracy.top1 and accuracy.samples == 899
    assert evaluate(build("googlenet-small")[0], loaders.held_out).top1 < 30  # it learned; it was not born knowing
    said = []
    again = trained("googlenet-small", seed=0, say=said.append)
    assert said == [] and again[2] == accuracy  # loaded from the cache, same weights


def test_rebirth_optimize_slims_googlenet_within_the_budget_and_reports_it(googlenet_small, tmp_path, capsys):
    """The README's pipeline on the paper's network: profile, slim, profile again, report."""
    from tests.browser import Browser, find_chromium

    out = tmp_path / "out"
    code = cli.main(["optimize", "zoo:googlenet-small", "-o", str(out), "--iterations", "10", "--precision", "5",
                     "--block-steps", "10", "--end-to-end-steps", "10"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for stage in ("1/4", "2/4", "3/4", "4/4"):
        assert stage in captured.err  # progress for every stage
    record = json.loads((out / "slim.json").read_text())
    kinds = [merge["kind"] for merge in record["merges"]]
    assert kinds.count("remove_lrn") == 2
    accuracy = record["accuracy"]
    assert accuracy["before"]["top1"] >= 90 and accuracy["after"]["top1"] >= accuracy["before"]["top1"] - 0.5
    assert accuracy["agreement"] > 90 and "digits" in accuracy["dataset"]
    assert {skip["code"] for skip in record["skipped"]} <= {"over_budget", "small_gain"}
    slimmed = torch.export.load(str(out / "slim.pt2")).module()
    assert slimmed(torch.randn(1, 3, 64, 64)).shape == (1, 10)  # exported for the example's batch of 1
    before, after, paired = (json.loads((out / name).read_text())
                             for name in ("before.json", "after.json", "comparison.json"))
    assert after["summary"]["non_tensor_share"] < before["summary"]["non_tensor_share"]
    assert [run["side"] for run in paired["runs"]][:4] == ["a", "b", "b", "a"]  # measured side by side
    assert paired["blocks"] >= 4 and paired["a"] == "zoo:googlenet-small"
    assert json.loads((out / "plan.json").read_text())["model"]["source"] == "zoo:googlenet-small"
    assert not any(op["layer"] and op["layer"].startswith("lrn") for op in after["ops"])
    assert after["memory"]["planned_bytes"] < before["memory"]["planned_bytes"]
    assert after["model"]["etrecord"].endswith("slim.etrecord")
    # Every op of the slimmed program has its layer, but for the int8 program's conversion of its float input to
    # int8, which no module of the network computes (quantize_per_tensor of the input, before the first layer).
    unattributed = [op for op in after["ops"] if not op["layer"] and op["category"] != "framework"]
    assert all(op["source_op"] == "quantized_decomposed.quantize_per_tensor" for op in unattributed), unattributed
    assert len(unattributed) <= (1 if record["quantization"]["applied"] else 0)
    with Browser(find_chromium()) as browser:
        page = browser.open((out / "report.html").as_uri(), ready="document.body.dataset.charts === 'ready'")
        assert page.errors == [] and page.requests == [(out / "report.html").as_uri()]
        text = page.evaluate("document.body.innerText")
        shown = f"{1 / paired['ratio']:.2f}×" if paired["outcome"] == "decided" else "undecided"
        assert shown in text.lower() and "speed-up (paired)" in text.lower()  # labels are in capitals
        assert "lrn2" in text and "removed" in text
