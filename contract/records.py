"""Frozen dataclasses to and from their JSON form."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from rebirth.contract.errors import InputError

T = TypeVar("T")


def nulls_for_unknown(data: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """``data`` with each of ``keys`` whose value is not finite (an unbounded interval, a setting never run)
    written as null: JSON has no infinity or NaN."""
    return {**data, **{key: None for key in keys if not math.isfinite(data[key])}}


def unknown_for_nulls(data: dict[str, Any], unknown: Mapping[str, float]) -> dict[str, Any]:
    """``data`` read back: each key of ``unknown`` that is null takes the value standing for "not known"."""
    return {**data, **{key: value for key, value in unknown.items() if data.get(key) is None}}


def read_record(path: str | os.PathLike, build: Callable[[Any], T], what: str) -> T:
    """``build`` the record in the JSON file ``path``.

    Raises:
        InputError: the file is missing (``no such {what}``) or is not one (``not a rebirth {what}``).
    """
    path = Path(path)
    try:
        return build(json.loads(path.read_text()))
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputError(f"{path}: not a rebirth {what} ({error})") from None


def from_dict(cls: type[T], data: Any) -> T:
    """Build ``cls`` from a dict, recursively turning dicts and lists into the dataclasses and tuples its
    type hints name; keys ``cls`` does not know are ignored (newer files stay readable)."""
    converters = _converters(cls)  # type: ignore[arg-type]
    return cls(**{name: converters[name](value) for name, value in data.items() if name in converters})


@functools.cache
def _converters(cls: type) -> dict[str, Callable[[Any], Any]]:
    """How to read each field of ``cls``, worked out once per class from its type hints (``get_type_hints``
    evaluates every annotation's text again on each call: reading a Profile of a few hundred ops took 40 ms)."""
    hints = typing.get_type_hints(cls)
    return {field.name: _converter(hints[field.name]) for field in dataclasses.fields(cls)}


def _converter(hint: Any) -> Callable[[Any], Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        inner = _converter(next(a for a in args if a is not type(None)))
        return lambda value: None if value is None else inner(value)
    if dataclasses.is_dataclass(hint):
        return lambda value: None if value is None else from_dict(hint, value)  # type: ignore[arg-type]
    if origin is tuple:
        item = _converter(args[0])
        return lambda value: None if value is None else tuple(item(each) for each in value)
    return _same


def _same(value: Any) -> Any:
    return value
