"""Tables that fit the console's width without cutting a value.

rich lays a table out at the console's width (80 columns where the output is not a terminal, as in a CI log,
unless ``COLUMNS`` says otherwise) and cuts the cells that do not fit: ``0.156 → 0.0…``. A ``FittedTable`` is
printed in the first of its layouts that fits whole: as declared (a wide terminal sees the table as it always
was); with its headers wrapped; then with its own narrowing steps taken one by one, each kept once taken: a
column left out (said in one line under the table), before → after pairs stacked on two lines of a cell, names
shortened in the middle, columns moved to numbered notes under the table, or one table per value of some
columns. Numbers are never wrapped or cut, nor names until they are shortened; prose wraps between words. Where
nothing fits, labels and names fold onto further lines, and numbers too where even that does not fit: no
character is lost.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

TEXT, NUMBER, NAME, PROSE = "text", "number", "name", "prose"
"""Kinds of column: labels (kept whole), numbers (kept whole, right-aligned), names (plain text, kept whole until
a ``SHORTEN`` step) and prose (wraps between words)."""
NAME_FLOOR = 16
"""Names are never shortened below this many characters."""
NAME_END = 8
"""A shortened name keeps at least this many of its last characters."""
PROSE_FLOOR = 16
"""Prose counts this wide when a layout is measured (its longest word, if wider; its widest cell, if narrower)."""
TEXT_FOLD, ALL_FOLD = 1, 2
FOLD_FLOOR = 4
"""A column that folds counts this wide when a layout is measured."""
MEASURE_WIDTH = 10_000
NOTE_HEADER = "note"

Row = tuple[tuple["Cell", ...], str]


@dataclass(frozen=True)
class Column:
    """A column: its header, its kind (``TEXT``, ``NUMBER``, ``NAME`` or ``PROSE``) and a style for its cells."""

    header: str
    kind: str = TEXT
    style: str = ""


@dataclass(frozen=True)
class Pair:
    """Two values of one cell: ``0.156 → 0.078`` on one line or, where the table must narrow, stacked on two."""

    first: str
    second: str
    link: str = "→ "

    def text(self, stacked: bool) -> str:
        between = "\n" if stacked else " "
        return f"{self.first}{between}{self.link}{self.second}"


def arrow(before: Optional[float], after: Optional[float], template: str) -> Pair:
    """``before → after`` formatted by ``template``; ``-`` for a side that is None."""
    first, second = ("-" if value is None else template.format(value) for value in (before, after))
    return Pair(first, second)


Cell = Union[str, Pair]
"""Rich markup, or a ``Pair`` of plain values; a ``NAME`` column's cells are plain text."""


@dataclass(frozen=True)
class Drop:
    """A step: leave the column out (a line under the table says so)."""

    column: str


@dataclass(frozen=True, init=False)
class Notes:
    """A step: the columns' cells become numbered notes under the table (each cell after its header where several
    columns are noted); the first column noted so far shows each row's number (``[1]``) under the header
    ``note``."""

    columns: tuple[str, ...]

    def __init__(self, *columns: str):
        object.__setattr__(self, "columns", columns)


@dataclass(frozen=True, init=False)
class Group:
    """A step: one table for the rows of each value of these columns, titled with it."""

    columns: tuple[str, ...]

    def __init__(self, *columns: str):
        object.__setattr__(self, "columns", columns)


STACK, SHORTEN = "stack pairs", "shorten names"
Step = Union[Drop, Notes, Group, str]


@dataclass(frozen=True)
class Shape:
    """How a table is laid out: what the steps taken so far changed."""

    wrap_headers: bool = False
    dropped: tuple[str, ...] = ()
    noted: tuple[str, ...] = ()
    grouped: tuple[str, ...] = ()
    stacked: bool = False
    name_width: Optional[int] = None
    fold: int = 0
    """``TEXT_FOLD``: labels, names and prose fold where nothing else fits; ``ALL_FOLD``: numbers too."""


class FittedTable:
    """A table printed whole at any width; ``console.print`` it like a rich ``Table``.

    Args:
        columns: The columns, in order.
        title: The title above the table.
        steps: How the table narrows where it does not fit, in order: ``Drop(header)``, ``STACK``, ``SHORTEN``,
            ``Notes(*headers)``, ``Group(*headers)``.
        show_header: Whether the header row is shown.
    """

    def __init__(self, columns: Sequence[Column], title: str = "", steps: Sequence[Step] = (),
                 show_header: bool = True):
        self.columns = tuple(columns)
        self.title = title
        self.steps = tuple(steps)
        self.show_header = show_header
        self.rows: list[Row] = []

    def add_row(self, *cells: Cell, style: str = "") -> None:
        self.rows.append((cells, style))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        shape = self.shape(console, width)
        yield from self.tables(shape)
        if shape.dropped:
            yield Text(f"left out to fit {width} columns: {', '.join(shape.dropped)} "
                       f"(shown at {self.width(console, Shape())} columns and wider)", style="dim")
        for number, note in enumerate(self.notes(shape), 1):
            yield Text(f"[{number}] ") + Text.from_markup(note)

    def tables(self, shape: Shape) -> RenderResult:
        """The table laid out as ``shape``: one, or under the title one a group."""
        if not shape.grouped:
            yield self.table(shape, self.rows, self.title)
            return
        if self.title:
            yield Text.from_markup(self.title, style="table.title")
        for title, rows in self.groups(shape):
            yield self.table(shape, rows, title)

    def shape(self, console: Console, width: int) -> Shape:
        """The first layout that fits ``width`` columns whole (its headers wrapped only if that is needed), or the
        last one folded."""
        shape = Shape()
        for step in (*self.steps, None):
            for candidate in (shape, dataclasses.replace(shape, wrap_headers=True)):
                excess = self.width(console, candidate) - width
                if excess <= 0:
                    return candidate
            shape = self.take(step, shape, excess) if step is not None else candidate
        folded = dataclasses.replace(shape, fold=TEXT_FOLD)
        return folded if self.width(console, folded) <= width else dataclasses.replace(shape, fold=ALL_FOLD)

    def take(self, step: Step, shape: Shape, excess: int) -> Shape:
        """``shape`` with ``step`` taken (``excess``: how many columns too wide it is)."""
        if isinstance(step, Drop):
            return dataclasses.replace(shape, dropped=(*shape.dropped, step.column))
        if isinstance(step, Notes):
            return dataclasses.replace(shape, noted=(*shape.noted, *step.columns))
        if isinstance(step, Group):
            return dataclasses.replace(shape, grouped=(*shape.grouped, *step.columns))
        if step == STACK:
            return dataclasses.replace(shape, stacked=True)
        if step == SHORTEN:
            names = [index for index, column in enumerate(self.columns) if column.kind == NAME]
            widest = max((_width(cell) for index in names for cell in self._cells(index, shape, self.rows)),
                         default=0)
            return dataclasses.replace(shape, name_width=max(NAME_FLOOR, widest - excess))
        raise ValueError(f"unknown step {step!r}")

    def width(self, console: Console, shape: Shape) -> int:
        """Columns the table takes laid out as ``shape``, the columns that wrap counted at their floor."""
        table = self.table(shape, self.rows, self.title, measuring=True)
        return Measurement.get(console, console.options.update_width(MEASURE_WIDTH), table).maximum

    def table(self, shape: Shape, rows: Sequence[Row], title: str, measuring: bool = False) -> Table:
        """A rich table of ``rows`` laid out as ``shape`` (the columns that wrap capped at their floor when
        ``measuring``)."""
        table = Table(title=title or None, title_justify="left", show_header=self.show_header)
        shown = self._shown(shape)
        for index in shown:
            column, floor = self.columns[index], self._floor(index, shape)
            table.add_column(self._header(index, shape), justify="right" if column.kind == NUMBER else "left",
                             style=column.style, no_wrap=floor is None, overflow="fold",
                             max_width=floor if measuring else None)
        cells = [self._cells(index, shape, rows) for index in shown]
        for (_, style), row in zip(rows, zip(*cells)):
            table.add_row(*row, style=style)
        return table

    def groups(self, shape: Shape) -> list[tuple[str, list[Row]]]:
        """The rows by their values in the grouped columns (joined, the title of their table), in order of
        appearance."""
        indices = [index for index, column in enumerate(self.columns) if column.header in shape.grouped]
        groups: dict[str, list[Row]] = {}
        for row in self.rows:
            groups.setdefault(" · ".join(self._text(index, row[0][index], shape) for index in indices), []).append(row)
        return list(groups.items())

    def notes(self, shape: Shape) -> list[str]:
        """The distinct notes of the rows, in order of appearance."""
        return list(dict.fromkeys(note for note in (self._note(row, shape) for row in self.rows) if note))

    def _note(self, row: Row, shape: Shape) -> str:
        """The row's cells in the noted columns: the text alone for one column, else each after its header."""
        noted = [(column.header, self._text(index, row[0][index], shape))
                 for index, column in enumerate(self.columns) if column.header in shape.noted]
        if len(noted) == 1:
            return noted[0][1]
        return "; ".join(f"{escape(header)}: {text}" for header, text in noted if text)

    def _shown(self, shape: Shape) -> list[int]:
        """The columns in the table: neither dropped nor grouped, and of the noted columns only the first."""
        noted = [index for index, column in enumerate(self.columns) if column.header in shape.noted]
        return [index for index, column in enumerate(self.columns)
                if column.header not in shape.dropped + shape.grouped and index not in noted[1:]]

    def _cells(self, index: int, shape: Shape, rows: Sequence[Row]) -> list[str]:
        """The column's cells in ``rows`` as rich markup, laid out as ``shape``."""
        if self.columns[index].header not in shape.noted:
            return [self._text(index, cells[index], shape) for cells, _ in rows]
        numbers = {note: number for number, note in enumerate(self.notes(shape), 1)}
        return [f"[{numbers[note]}]" if note else "" for note in (self._note(row, shape) for row in rows)]

    def _text(self, index: int, cell: Cell, shape: Shape) -> str:
        if isinstance(cell, Pair):
            return escape(cell.text(shape.stacked or bool(shape.fold)))
        if self.columns[index].kind == NAME:
            return escape(shorten(cell, shape.name_width) if shape.name_width else cell)
        return cell

    def _floor(self, index: int, shape: Shape) -> Optional[int]:
        """How narrow a column that wraps counts when measured; None for a column kept whole."""
        kind = self.columns[index].kind
        if shape.fold == ALL_FOLD or (shape.fold and kind != NUMBER):
            return FOLD_FLOOR
        if kind != PROSE or self.columns[index].header in shape.noted:
            return None
        texts = [Text.from_markup(cell).plain for cell in self._cells(index, shape, self.rows)]
        longest_word = max((cell_len(word) for text in texts for word in text.split()), default=0)
        return max(longest_word, min(PROSE_FLOOR, max(map(_width_plain, texts), default=0)), 1)

    def _header(self, index: int, shape: Shape) -> str:
        header = self.columns[index].header
        if header in shape.noted:
            header = NOTE_HEADER
        if not shape.wrap_headers:
            return escape(header)
        cells = max((_width(cell) for cell in self._cells(index, shape, self.rows)), default=0)
        width = max(min(cells, self._floor(index, shape) or cells), 1)
        return escape("\n".join(textwrap.wrap(header, width, break_long_words=False, break_on_hyphens=False)))


def shorten(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters, ``…`` in place of its middle: its first dotted part where that
    leaves room for its last ``NAME_END`` characters (``inception4e…nch3.1.conv``), else its first half, and its
    end."""
    if len(name) <= width:
        return name
    first = name.split(".")[0]
    head = len(first) if "." in name and width - 1 - len(first) >= NAME_END else (width - 1) // 2
    return f"{name[:head]}…{name[len(name) - (width - 1 - head):]}"


def _width(markup: str) -> int:
    """The widest line of a cell, as shown."""
    return _width_plain(Text.from_markup(markup).plain)


def _width_plain(text: str) -> int:
    return max((cell_len(line) for line in text.split("\n")), default=0)
