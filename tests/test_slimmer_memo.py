"""The original's held-out logits, and its logits on the training batches, kept on disk by what they are computed
from (``slimmer.memo``)."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rebirth.slimmer import memo
from rebirth.slimmer.graph import trace


def net(slope: float = 0.1) -> nn.Module:
    torch.manual_seed(0)
    return trace(nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(slope), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                               nn.Linear(4, 3)))


def loader(seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.randn(10, 3, 8, 8, generator=generator), torch.arange(10) % 3), 4)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REBIRTH_CACHE", str(tmp_path / "cache"))


def counted(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = memo.logits_of

    def counting(model, held_out):
        calls.append(1)
        return real(model, held_out)

    monkeypatch.setattr(memo, "logits_of", counting)
    return calls


def test_the_same_model_on_the_same_data_is_scored_once_and_read_back_alike(monkeypatch):
    calls = counted(monkeypatch)
    first = memo.held_out_logits(net(), loader())
    again = memo.held_out_logits(net(), loader())  # another copy of the same model, as another run would build
    assert len(calls) == 1
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert torch.equal(first[0], memo.logits_of(net(), loader())[0])


def test_whatever_the_logits_depend_on_makes_a_new_key(monkeypatch):
    calls = counted(monkeypatch)
    memo.held_out_logits(net(), loader())
    changed = net()
    with torch.no_grad():
        changed.get_submodule("0").weight[0, 0, 0, 0] += 1e-6  # one weight
    memo.held_out_logits(changed, loader())
    assert "0.2" not in net(0.2).code
    memo.held_out_logits(net(0.2), loader())  # an attribute that is not a tensor (and not in the graph's code)
    memo.held_out_logits(net(), loader(seed=1))  # other held-out images
    hooked = net()
    hooked.get_submodule("1").register_forward_hook(lambda module, inputs, output: output + 1)
    memo.held_out_logits(hooked, loader())  # a hook changes the output
    assert len(calls) == 5


def test_a_damaged_cache_file_is_computed_again(monkeypatch):
    calls = counted(monkeypatch)
    model, data = net(), loader()
    memo.held_out_logits(model, data)
    path = memo.memo_dir() / f"{memo._key(model, data)}.pt"
    path.write_bytes(path.read_bytes()[:20])
    logits, _ = memo.held_out_logits(model, data)
    assert len(calls) == 2 and torch.equal(logits, memo.logits_of(model, data)[0])
    path.write_bytes(b"not a tensor file")  # not a truncated one: the unpickler refuses it
    memo.held_out_logits(model, data)
    assert len(calls) == 4  # and one more by the check above


def test_the_key_is_the_same_in_another_process_whatever_its_string_hashing():
    """Sets of names (a module's non-persistent buffers) are iterated in a per-process order; the key is not."""
    import os
    import subprocess
    import sys

    code = ("import torch, sys; sys.path.insert(0, '.'); from tests.test_slimmer_memo import net, loader; "
            "from rebirth.slimmer import memo; model = net(); "
            "[model.get_submodule('0').register_buffer(name, torch.ones(1), persistent=False) for name in 'abcdefgh']; "
            "print(memo._key(model, loader()))")
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=dict(os.environ, PYTHONHASHSEED=seed)).stdout.strip() for seed in ("1", "2")}
    assert len(keys) == 1 and len(keys.pop()) == 40


def test_a_loader_that_does_more_than_read_tensors_in_memory_is_scored_every_time(monkeypatch):
    """A user's loader may decode files or draw augmentations on each pass: reading it twice to key it could
    cost more than it saves, and its samples may not be the same twice."""
    calls = counted(monkeypatch)
    data = loader().dataset
    shuffled = DataLoader(data, 4, shuffle=True, generator=torch.Generator().manual_seed(0))
    listed = DataLoader([data[i] for i in range(len(data))], 4)
    for held_out in (shuffled, shuffled, listed, listed):
        memo.held_out_logits(net(), held_out)
    assert len(calls) == 4 and not memo.memo_dir().exists()


def _training(model: nn.Module, data: DataLoader):
    batches = [(images.contiguous(memory_format=torch.channels_last), labels) for images, labels in data]
    return memo.teacher_logits(model, batches, data)


def test_the_teacher_logits_of_training_batches_a_run_computed_are_read_back_by_the_next():
    data = loader()
    first = _training(net(), data)
    assert [len(first[index][2]) for index in (2, 0)] == [2, 4]  # two of the three batches, as a short run asks
    first.kept()
    again = _training(net(), data)  # the next run, with its own copy of the model
    assert again.known == {0, 2} and not again.computed
    for index in (0, 2):
        assert torch.equal(again.logits[index], first.logits[index])
        assert torch.equal(again.logits[index], net()(first.batches[index][0]).detach())
    again[1]
    again.kept()
    assert _training(net(), data).known == {0, 1, 2}
    assert _training(net(), loader(seed=1)).known == set()  # other images
    changed = net()
    with torch.no_grad():
        changed.get_submodule("4").bias[0] += 1e-6
    assert _training(changed, data).known == set()


def test_damaged_or_foreign_teacher_logits_are_computed_again():
    data = loader()
    first = _training(net(), data)
    first[0]
    first.kept()
    path = next(memo.memo_dir().iterdir())
    torch.save({"batches": {0: torch.zeros(3, 3)}}, path)  # a batch of 4 samples with 3 rows
    assert _training(net(), data).known == set()
    path.write_bytes(b"not a tensor file")
    assert _training(net(), data).known == set()


def test_teacher_logits_of_a_loader_that_does_more_than_read_tensors_are_not_kept():
    shuffled = DataLoader(loader().dataset, 4, shuffle=True, generator=torch.Generator().manual_seed(0))
    logits = _training(net(), shuffled)
    logits[0]
    logits.kept()
    assert not memo.memo_dir().exists()
