"""Where a model comes from: a .pte, a .pt2, ``file.py:NAME`` or ``zoo:NAME``."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rebirth.contract.errors import InputError, ModelFileError

PTE, PT2, PYTHON, ZOO = "pte", "pt2", "python", "zoo"


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A parsed model argument. Parsing checks paths and names but imports nothing heavy."""

    kind: str
    """``pte``, ``pt2``, ``python`` (``file.py:NAME``) or ``zoo``."""
    text: str
    path: Optional[Path] = None
    name: Optional[str] = None
    """The zoo name, or the function of a Python file."""

    @property
    def label(self) -> str:
        """A short name for the model: the zoo name, the function, or the file stem."""
        if self.kind == ZOO:
            return self.name or self.text
        if self.kind == PYTHON:
            assert self.path is not None
            return f"{self.path.stem}.{self.name}"
        return self.path.stem if self.path else self.text


def parse_spec(text: str) -> ModelSpec:
    """Parse a model argument.

    Raises:
        InputError: unknown zoo name, missing file, or a form we do not know.
    """
    if text.startswith("zoo:"):
        from rebirth.models import zoo

        name = text[4:]
        if name not in zoo.ZOO:
            raise InputError(f"unknown zoo model {name!r}; the zoo has: {', '.join(zoo.names())}")
        return ModelSpec(kind=ZOO, text=text, name=name)
    if ".py:" in text:
        file, _, name = text.rpartition(":")
        path = _existing(file)
        if not name.isidentifier():
            raise InputError(f"{text}: {name!r} is not a Python function name")
        return ModelSpec(kind=PYTHON, text=text, path=path, name=name)
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix == ".pte":
        return ModelSpec(kind=PTE, text=text, path=_existing(text))
    if suffix == ".pt2":
        return ModelSpec(kind=PT2, text=text, path=_existing(text))
    if not path.exists():
        raise InputError(f"{text}: no such file")
    raise InputError(f"{text}: not a model: expected a .pte, a .pt2, file.py:NAME or zoo:NAME")


def _existing(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise InputError(f"{text}: no such file")
    if not path.is_file():
        raise InputError(f"{text}: not a file")
    return path


def fingerprint(spec: ModelSpec) -> str:
    """A hash that changes when the model's definition changes (for the export cache)."""
    digest = hashlib.sha256(spec.kind.encode())
    if spec.kind == ZOO:
        from rebirth.models import zoo

        assert spec.name is not None
        for file in sorted(Path(zoo.__file__).parent.glob("*.py")):
            digest.update(file.read_bytes())
        digest.update(spec.name.encode())
    else:
        assert spec.path is not None
        digest.update(spec.path.read_bytes())
        digest.update((spec.name or "").encode())
    return digest.hexdigest()[:20]


def load_python(spec: ModelSpec) -> tuple[Any, tuple]:
    """``(model, example_inputs)`` from a zoo name or a function in a Python file.

    Raises:
        InputError: the file cannot be imported, the function is missing or returns
            something else.
    """
    if spec.kind == ZOO:
        from rebirth.models import zoo

        assert spec.name is not None
        return zoo.build(spec.name)
    assert spec.path is not None and spec.name is not None
    result = import_function(spec.path, spec.name)()
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], (tuple, list))):
        raise InputError(f"{spec.text}: must return (model, example_inputs) with example_inputs a tuple")
    model, inputs = result
    return model.eval(), tuple(inputs)


def import_function(where: Path | str, name: str):
    """Function ``name`` of a Python file (a Path) or of an importable module (a dotted name).

    Raises:
        InputError: the file or module cannot be imported, or has no such function.
    """
    try:
        if isinstance(where, Path):
            _beside(where)
            module_name = "rebirth_user_" + hashlib.sha1(str(where.resolve()).encode()).hexdigest()[:10]
            loader_spec = importlib.util.spec_from_file_location(module_name, where)
            if loader_spec is None or loader_spec.loader is None:
                raise ImportError("no module loader for this file")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except Exception as error:
        raise InputError(f"{where}: importing it failed: {type(error).__name__}: {error}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise InputError(f"{where}: has no function {name!r}")
    return function


def _beside(file: Path) -> None:
    """Put the folder of a user's file first on sys.path, as ``python file.py`` does: its own imports
    (``from models import Net``) find the modules beside it."""

    folder = str(file.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)


def load_exported(spec: ModelSpec):
    """A ``torch.export.ExportedProgram`` for any spec except a .pte.

    Raises:
        InputError: a .pte (its graph is gone), or a model torch.export cannot trace.
    """
    import torch

    if spec.kind == PTE:
        raise InputError(f"{spec.text}: a .pte has no PyTorch graph left; pass the .pt2, file.py:NAME or zoo:NAME")
    if spec.kind == PT2:
        try:
            return torch.export.load(str(spec.path))
        except Exception as error:
            raise ModelFileError(f"{spec.path}: not a torch.export .pt2 ({type(error).__name__}: {error})") from None
    model, inputs = load_python(spec)
    try:
        return torch.export.export(model, inputs)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{spec.text}: torch.export failed: {first}") from None
