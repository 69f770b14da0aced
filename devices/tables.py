"""A dataclass from a TOML table, checked against the dataclass's own annotations: its fields, their types
and their defaults are declared once, on the dataclass.

Annotations read: ``str``, ``int``, ``float`` (an integer is taken too), ``bool``, ``dict`` (a table),
``Path`` (a string; ``~`` expanded, relative to ``base``), ``Optional[X]``, ``Literal[...]`` (one of the
values) and ``Annotated[X, check, ...]``, each check taking the value and returning it (perhaps normalized)
or raising ``ValueError`` that says what it must be ("must be at least 1").

Why not cattrs (installed here through coremltools) or pydantic (not installed): cattrs converts rather than
checks (it takes "4" and 4.7 for an integer and true for a number) and names keys as ``$.threads``, so
strict types, messages and range checks would be ours anyway, and pydantic would be a new dependency for
one twelve-field table.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")

TOML_TYPES: dict[type, str] = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
                               dict: "a table", list: "an array"}


class FieldError(ValueError):
    """A value of the table is wrong; the message names its key."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class UnknownKeyError(FieldError):
    """A key that is no field; ``close`` is the field it is closest to, if one is close."""

    def __init__(self, key: str, message: str, close: Optional[str] = None):
        super().__init__(key, message)
        self.close = close


def load_table(cls: type[T], table: Mapping[str, Any], base: Optional[Path] = None, **given: Any) -> T:
    """``cls(**given, **table)``, each value of ``table`` checked against its field's annotation.

    Args:
        cls: a dataclass.
        table: what the TOML file holds for it; fields it lacks keep their defaults.
        base: the folder relative ``Path`` values are taken from (the TOML file's).
        given: fields set by the caller, which ``table`` may not set.

    Raises:
        UnknownKeyError: a key that is not a field (with the closest field, when one is close).
        FieldError: a wrong value.
    """
    hints = get_type_hints(cls, include_extras=True)
    settable = [field.name for field in dataclasses.fields(cls)  # type: ignore[arg-type]
                if field.init and field.name not in given]
    values = {}
    for key, value in table.items():
        if key not in settable:
            raise _unknown(key, settable)
        values[key] = read_value(key, hints[key], value, base)
    return cls(**given, **values)


def read_value(key: str, hint: Any, value: Any, base: Optional[Path] = None) -> Any:
    """``value`` as the annotation ``hint`` wants it.

    Raises:
        FieldError: it is not.
    """
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        return _checked(key, read_value(key, args[0], value, base), hint.__metadata__)
    if origin in (Union, types.UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"{key}: only Optional[X] unions are read, not {hint}")
        return read_value(key, inner[0], value, base)
    if origin is Literal:
        if value not in args or type(value) not in {type(arg) for arg in args}:
            raise FieldError(key, f"{key} must be one of {', '.join(map(str, args))}, not {shown(value)}")
        return value
    if hint is Path:
        path = Path(read_value(key, str, value)).expanduser()
        return path if base is None or path.is_absolute() else base / path
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint not in TOML_TYPES:
        raise TypeError(f"{key}: {hint} is not a type this loader reads")
    if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise FieldError(key, f"{key} must be {TOML_TYPES[hint]}, not {shown(value)}")
    return value


def shown(value: Any) -> str:
    """A TOML value as a user would name it: ``a string ("four")``, ``a table``."""
    kind = next((name for kind, name in TOML_TYPES.items() if type(value) is kind), "a date or time")
    if isinstance(value, (dict, list)):
        return kind
    text = json.dumps(value) if isinstance(value, (str, bool, int, float)) else str(value)
    return f"{kind} ({text if len(text) <= 40 else text[:37] + '...'})"


def _checked(key: str, value: Any, checks: tuple[Callable[[Any], Any], ...]) -> Any:
    for check in checks:
        try:
            value = check(value)
        except ValueError as error:
            raise FieldError(key, f"{key} {error}") from None
    return value


def _unknown(key: str, known: list[str]) -> UnknownKeyError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UnknownKeyError(key, f"unknown key {key!r}{hint}; keys: {', '.join(sorted(known))}",
                      close[0] if close else None)


def at_least(low: float) -> Callable[[Any], Any]:
    """A check: the value is ``low`` or more, and a finite number (TOML has ``inf`` and ``nan``)."""
    def check(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if value < low:
            raise ValueError(f"must be at least {low}" if low else "must not be negative")
        return value

    return check
