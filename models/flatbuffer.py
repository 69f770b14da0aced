"""Reading flatbuffer tables by field name, every offset checked, without a generated reader.

ExecuTorch's own readers live under ``executorch.exir``, whose import costs seconds (it imports torch): the
.pte through flatbuffers classes generated there, the ETDump through ``flatc``'s JSON and exir's dataclasses.
We read the same tables in place. The ``flatbuffers`` runtime does not fit: it checks no offset (a damaged
file reads as garbage, a negative offset from the end of the buffer) and imports numpy. A table's fields are
named in schema order (``Layout``): the flatbuffer format keeps a field's slot for ever (fields are only
appended), so a layout written from a schema reads every later version of it; tests check the layouts
against the schemas the executorch wheel ships.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Optional

_UOFFSET, _SOFFSET, _VOFFSET = "<I", "<i", "<H"


class FlatbufferError(ValueError):
    """The bytes are not a well-formed flatbuffer of the expected kind."""


@dataclass(frozen=True)
class Layout:
    """A table's fields in schema order; a union field takes two slots, ``NAME_type`` then ``NAME``."""

    name: str
    fields: tuple[str, ...]

    def slot(self, field: str) -> int:
        """The field's offset within a vtable."""
        try:
            return 4 + 2 * self.fields.index(field)
        except ValueError:
            raise KeyError(f"{self.name} has no field {field!r}") from None


def root(data: bytes, layout: Layout, identifier: bytes, size_prefixed: bool = False) -> Table:
    """The root table of a flatbuffer that carries ``identifier``.

    Raises:
        FlatbufferError: the buffer is too short, has another identifier, or its root is out of bounds.
    """
    buffer = memoryview(data)
    if size_prefixed:  # as flatc reads it: the prefix is skipped, not trusted
        buffer = buffer[4:]
    if len(buffer) < 8 or bytes(buffer[4:8]) != identifier:
        raise FlatbufferError(f"no {identifier.decode(errors='replace')} identifier")
    return Table(buffer, _offset(buffer, 0), layout)


def _read(buffer: memoryview, form: str, position: int) -> Any:
    if position < 0 or position + struct.calcsize(form) > len(buffer):
        raise FlatbufferError(f"offset {position} is outside the {len(buffer)} bytes")
    return struct.unpack_from(form, buffer, position)[0]


def _offset(buffer: memoryview, position: int) -> int:
    """Where the uoffset stored at ``position`` points."""
    return position + _read(buffer, _UOFFSET, position)


class Table:
    """One table in a buffer: its fields read by name, an absent field as its default."""

    __slots__ = ("_buffer", "_layout", "_position", "_table_size", "_vtable", "_vtable_size")

    def __init__(self, buffer: memoryview, position: int, layout: Layout):
        self._buffer, self._position, self._layout = buffer, position, layout
        self._vtable = position - _read(buffer, _SOFFSET, position)
        self._vtable_size = _read(buffer, _VOFFSET, self._vtable)
        self._table_size = _read(buffer, _VOFFSET, self._vtable + 2)
        if self._vtable_size < 4 or self._vtable_size % 2 or self._table_size < 4 \
                or position + self._table_size > len(buffer) or self._vtable + self._vtable_size > len(buffer):
            raise FlatbufferError(f"{layout.name} at {position}: its vtable is damaged")

    def _field(self, name: str) -> Optional[int]:
        """The position of a field's value, or None when the table does not store it."""
        slot = self._layout.slot(name)
        if slot >= self._vtable_size:
            return None
        offset = _read(self._buffer, _VOFFSET, self._vtable + slot)
        if offset == 0:
            return None
        if offset >= self._table_size:
            raise FlatbufferError(f"{self._layout.name}.{name} lies outside its table")
        return self._position + offset

    def scalar(self, name: str, form: str, default: Any = 0) -> Any:
        """A number (``form`` as in ``struct``: ``<i``, ``<Q``, ``<b``...)."""
        position = self._field(name)
        return default if position is None else _read(self._buffer, form, position)

    def string(self, name: str) -> Optional[str]:
        raw = self._vector(name, 1)
        if raw is None:
            return None
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError:
            raise FlatbufferError(f"{self._layout.name}.{name} is not UTF-8") from None

    def bytes(self, name: str) -> Optional[bytes]:
        """A ``[ubyte]`` vector, copied."""
        raw = self._vector(name, 1)
        return None if raw is None else bytes(raw)

    def count(self, name: str) -> int:
        """How many elements a vector has (0 when it is absent)."""
        position = self._field(name)
        return 0 if position is None else self._vector_at(position, 1)[1]

    def scalars(self, name: str, form: str) -> Optional[tuple]:
        """A vector of numbers."""
        raw = self._vector(name, struct.calcsize(form))
        return None if raw is None else tuple(value for (value,) in struct.iter_unpack(form, raw))

    def table(self, name: str, layout: Layout) -> Optional[Table]:
        position = self._field(name)
        return None if position is None else Table(self._buffer, _offset(self._buffer, position), layout)

    def tables(self, name: str, layout: Layout) -> Optional[tuple[Table, ...]]:
        """A vector of tables."""
        position = self._field(name)
        if position is None:
            return None
        start, count = self._vector_at(position, 4)
        return tuple(Table(self._buffer, _offset(self._buffer, start + 4 * i), layout) for i in range(count))

    def union(self, name: str, members: tuple[str, ...], layouts: dict[str, Layout]) -> tuple[str, Optional[Table]]:
        """A union field: its member's name (``NONE`` when unset) and, for a member in ``layouts``, its table.

        ``members`` lists the union's types in schema order; type 0 is ``NONE``.
        """
        kind = self.scalar(f"{name}_type", "<B")
        if kind == 0:
            return "NONE", None
        if kind > len(members):
            raise FlatbufferError(f"{self._layout.name}.{name} has an unknown type {kind}")
        member = members[kind - 1]
        layout = layouts.get(member)
        return member, self.table(name, layout) if layout is not None else None

    def _vector(self, name: str, element_size: int) -> Optional[memoryview]:
        position = self._field(name)
        if position is None:
            return None
        start, count = self._vector_at(position, element_size)
        return self._buffer[start: start + count * element_size]

    def _vector_at(self, position: int, element_size: int) -> tuple[int, int]:
        vector = _offset(self._buffer, position)
        count = _read(self._buffer, _UOFFSET, vector)
        if vector + 4 + count * element_size > len(self._buffer):
            raise FlatbufferError(f"a vector of {count} at {vector} runs past the {len(self._buffer)} bytes")
        return vector + 4, count
