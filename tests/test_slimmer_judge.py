"""The judge's early stops: a check whose refusal is not recorded scores the original's misses first and stops as
soon as a step cannot be within the budget, and says exactly what a whole pass says; an end-to-end fit asks once,
halfway, whether it is within already. Scored in bfloat16, every decision is float32's."""

import copy
import random
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rebirth.contract.slim import TOP1
from rebirth.slimmer import judge as judging
from rebirth.slimmer.judge import Judge

SAMPLES, CLASSES = 400, 10


@pytest.fixture(autouse=True)
def float32(monkeypatch):
    """The judge scores in float32 (the tests of bfloat16 scoring turn it on), so that passes can be counted."""
    monkeypatch.setattr(judging, "LOW_PRECISION", False)


class Lookup(nn.Module):
    """Predicts a given class for each sample, found by the sample's number written in its image; counts the
    samples it scored."""

    def __init__(self, predicted: torch.Tensor):
        super().__init__()
        self.predicted = predicted
        self.scored = 0

    def forward(self, images):
        self.scored += len(images)
        rows = images[:, 0, 0, 0].round().long()
        logits = torch.zeros(len(images), CLASSES)
        logits[torch.arange(len(images)), self.predicted[rows]] = 1.0 + rows.float() / SAMPLES  # no ties
        return logits


def _setting(missed: int = 30, budget: float = 0.5, batch: int = 32):
    """A judge of held-out samples the original gets right but ``missed`` of, and the original's predictions."""
    labels = torch.randint(0, CLASSES, (SAMPLES,), generator=torch.Generator().manual_seed(1))
    images = torch.arange(SAMPLES, dtype=torch.float32)[:, None, None, None].expand(SAMPLES, 3, 2, 2).clone()
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch)
    original = labels.clone()
    original[:missed * 13:13] = (labels[:missed * 13:13] + 1) % CLASSES  # misses spread over the batches
    teacher_logits = Lookup(original)(images)
    reference = 100.0 * (original == labels).float().mean().item()
    return Judge(SimpleNamespace(held_out=loader), teacher_logits, TOP1, reference, budget), labels, original


def _student(labels, original, lost: int, gained: int, changed: int = 0, seed: int = 0) -> Lookup:
    """The original with ``lost`` of its hits made misses, ``gained`` of its misses made hits, and ``changed`` of
    its misses made other misses, each chosen at random."""
    rng = random.Random(seed)
    hits = [i for i in range(SAMPLES) if original[i] == labels[i]]
    misses = [i for i in range(SAMPLES) if original[i] != labels[i]]
    predicted = original.clone()
    for i in rng.sample(hits, lost):
        predicted[i] = (labels[i] + 1 + rng.randrange(CLASSES - 1)) % CLASSES
    chosen = rng.sample(misses, gained + changed)
    for i in chosen[:gained]:
        predicted[i] = labels[i]
    for i in chosen[gained:]:
        predicted[i] = next(c for c in range(CLASSES) if c not in (labels[i], original[i]))
    return Lookup(predicted)


def test_a_step_that_loses_many_is_refused_after_a_few_pieces():
    judge, labels, original = _setting()
    student = _student(labels, original, lost=40, gained=2)
    assert not judge.examine(_student(labels, original, lost=40, gained=2)).within
    assert judge.fitting(student) is None
    assert student.scored < SAMPLES / 3  # the misses, then hits until the losses alone put it over


@pytest.mark.parametrize("budget,margin,batch", [(0.5, 0.0, 32), (2.0, 0.0, 32), (2.0, 0.8, 32), (6.0, 1.0, 32),
                                                 (2.0, 0.0, 1)])  # batches of one: some hold only a miss
def test_the_early_stop_says_what_the_whole_pass_says(budget, margin, batch):
    judge, labels, original = _setting(budget=budget, batch=batch)
    for seed in range(24):
        rng = random.Random(seed)
        student = _student(labels, original, rng.randrange(0, 25), rng.randrange(0, 12), rng.randrange(0, 6), seed)
        whole = judge.examine(student)
        found = judge.fitting(student, margin)
        if whole.fits(margin):
            assert found == whole, seed
        else:
            assert found is None, seed


def test_misses_too_large_to_keep_are_scored_in_order_with_the_same_answer(monkeypatch):
    judge, labels, original = _setting()
    monkeypatch.setattr(judging, "MISSED_FIRST_BYTES", 64)
    same = _student(labels, original, lost=0, gained=1)
    assert judge.fitting(same) == judge.examine(same)
    losing = _student(labels, original, lost=40, gained=2)
    assert judge.fitting(losing) is None and losing.scored == SAMPLES  # no early stop: it scored them all


def test_a_model_is_scored_again_only_once_its_parameters_change():
    judge, labels, _ = _setting()
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, CLASSES))
    runs = []
    model.register_forward_hook(lambda *_: runs.append(1))
    first = judge.examine(model)
    assert judge.examine(model) == first and judge.logits(model) is judge.logits(model)
    scored = len(runs)
    with torch.no_grad():
        model[1].bias[labels[0]] += 100.0  # in place, as a training step changes it: every sample predicts one class
    again = judge.examine(model)
    assert len(runs) == 2 * scored and again != first
    assert judge.examine(copy.deepcopy(model)) == again and len(runs) == 3 * scored  # the same state, another model


@pytest.mark.parametrize("answer,taken", [(True, 10), (False, 20)])
def test_end_to_end_fitting_asks_once_halfway_and_stops_at_a_yes(answer, taken):
    from rebirth.slimmer.finetune import TeacherLogits, fit_end_to_end

    torch.manual_seed(0)
    teacher, student = nn.Linear(4, 3), nn.Linear(4, 3)
    batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(5)]
    asked, done = [], []

    def enough() -> bool:
        asked.append(len(done))
        return answer

    steps = fit_end_to_end(student, TeacherLogits(teacher, batches), 20, lr=1e-2, decay=True, enough=enough,
                           progress=lambda stage, step, total: done.append(step))
    assert steps == taken and done[-1] == taken and asked == [10]


class Convolutional(nn.Module):
    """A small untrained convolutional network: many of its samples' top two logits are close."""

    def __init__(self, cancel: float = 0.0):
        super().__init__()
        torch.manual_seed(3)
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(32, CLASSES)
        self.cancel = cancel
        self.calls: list[torch.dtype] = []

    def forward(self, images):
        self.calls.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        logits = self.head(self.features(images))
        return (logits + self.cancel) - self.cancel  # bfloat16 keeps too few digits of a large value to take away


def _images_judge(model: nn.Module, budget: float = 0.5):
    torch.manual_seed(5)
    images = torch.randn(SAMPLES, 3, 12, 12)
    labels = torch.randint(0, CLASSES, (SAMPLES,))
    with torch.no_grad():
        teacher = model(images) + 0.05 * torch.randn(SAMPLES, CLASSES)
    loader = DataLoader(TensorDataset(images, labels), batch_size=64)
    return Judge(SimpleNamespace(held_out=loader), teacher, TOP1, 50.0, budget)


def test_bfloat16_scoring_decides_as_float32_does(monkeypatch):
    model = Convolutional()
    judge = _images_judge(model)
    exact = judge.examine(copy.deepcopy(model))
    monkeypatch.setattr(judging, "LOW_PRECISION", True)
    low = _images_judge(model)
    found = low.examine(model)
    assert found == exact  # the same predictions: the same quality, losses, changes and bound
    assert torch.bfloat16 in model.calls
    precision = low._precision
    assert precision.scored == SAMPLES and 0 < precision.rescored < SAMPLES and precision.redone == 0
    assert low.fitting(copy.deepcopy(model), 0.0) == judge.fitting(copy.deepcopy(model), 0.0)


def test_ties_are_scored_in_float32_and_broken_alike(monkeypatch):
    monkeypatch.setattr(judging, "LOW_PRECISION", True)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(), nn.Linear(4 * 12 * 12, CLASSES))
    with torch.no_grad():
        model[2].weight.zero_()
        model[2].bias.zero_()  # all-zero logits: every sample ties
    judge = _images_judge(model)
    evidence = judge.examine(model)
    assert judge._precision.rescored == SAMPLES
    assert evidence.quality == pytest.approx(100.0 * (judge.labels == 0).float().mean().item())  # the first wins


def test_a_pass_whose_bfloat16_errs_too_much_is_made_again_in_float32(monkeypatch):
    exact = _images_judge(Convolutional(cancel=300.0)).examine(Convolutional(cancel=300.0))
    monkeypatch.setattr(judging, "LOW_PRECISION", True)
    model = Convolutional(cancel=300.0)
    judge = _images_judge(model)
    assert judge.examine(model) == exact
    assert judge._precision.redone == 1 and model.calls[-1] == torch.float32


def test_a_model_bfloat16_cannot_run_is_scored_in_float32(monkeypatch):
    class Fussy(Convolutional):
        def forward(self, images):
            if torch.is_autocast_enabled("cpu"):
                raise RuntimeError("no bfloat16 kernel for this operator")
            return super().forward(images)

    exact = _images_judge(Fussy()).examine(Fussy())
    monkeypatch.setattr(judging, "LOW_PRECISION", True)
    judge = _images_judge(Fussy())
    assert judge.examine(Fussy()) == exact and judge._precision.off


def test_a_model_that_gives_no_class_logits_is_scored_in_float32(monkeypatch):
    class One(Convolutional):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(32, 1)

    exact = _images_judge(One()).examine(One())
    monkeypatch.setattr(judging, "LOW_PRECISION", True)
    judge = _images_judge(One())
    assert judge.examine(One()) == exact and judge._precision.off and judge._precision.redone == 0
