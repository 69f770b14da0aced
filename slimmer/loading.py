"""What the slimmer can work on, and the model and data it works with."""

from __future__ import annotations

from typing import Optional

from rebirth.contract.errors import InputError
from rebirth.models import PT2, PTE, ModelSpec, parse_spec
from rebirth.slimmer.steps.base import Say


def slimmable(model: str) -> ModelSpec:
    """The parsed model argument, if the slimmer can work on it.

    Raises:
        InputError: a .pte or .pt2 (no nn.Module layers left), or a bad argument.
    """
    spec = parse_spec(model)
    if spec.kind == PTE:
        raise InputError(f"{spec.text}: a .pte cannot be slimmed, its PyTorch graph is gone; pass the model it "
                         "came from (file.py:NAME or zoo:NAME) and --profile with its profile")
    if spec.kind == PT2:
        raise InputError(f"{spec.text}: a .pt2 cannot be slimmed, its layers are gone (torch.export.unflatten gives "
                         "back the module tree, but each layer as aten calls, not an nn.Conv2d the passes can "
                         "rewrite and retrain); pass the model it came from as file.py:NAME")
    return spec


def load_model(spec: ModelSpec, seed: int, say: Say):
    """``(model, example_inputs, trained)``: zoo networks come with their digits-trained weights where
    rebirth trains them; other models as they are."""
    from rebirth.models import ZOO, import_heavy, load_python

    import_heavy()
    if spec.kind == ZOO:
        from rebirth.slimmer.weights import trained_model

        assert spec.name is not None
        found = trained_model(spec.name, seed, say)
        if found is not None:
            return found[0], found[1], True
        say(f"zoo:{spec.name} has no trained weights (rebirth trains the -small variants)")
    model, inputs = load_python(spec)
    return model, inputs, False


def user_data(text: str):
    """The loaders of ``--data`` (None for the built-in digits, made at the model's size later).

    Raises:
        InputError: the data cannot be found or is not a pair of loaders.
    """
    from rebirth.slimmer.data import user_loaders

    return None if text == "digits" else user_loaders(text)


def data_for(model, inputs: tuple, trained: bool, data, say: Say) -> tuple[Optional[object], bool, list[str]]:
    """``(loaders, trained, messages)``: the user's data (and whether the model learned it), else the built-in
    digits at the model's input size, else None and the message that says only exact merges can be made."""
    from rebirth.slimmer.policy import digits_for, learned

    if data is None:
        loaders, messages = digits_for(inputs, say)
        return loaders, trained, messages
    return data, trained or learned(model, data, say), []
