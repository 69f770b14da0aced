"""The program of a .pte as plain records, read in place (no executorch import).

The tables are those of ``executorch/schema/program.fbs``, in its field order; only what rebirth reads is kept
(no values, no stack traces). What ``executorch.exir._serialize._program.deserialize_pte_binary`` does with
the extended header and the segments after the flatbuffer is done the same way: a delegate's processed bytes
and the constant buffers come from their segments.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from rebirth.models.flatbuffer import FlatbufferError, Layout, Table, root

IDENTIFIER = b"ET12"

PROGRAM = Layout("Program", ("version", "execution_plan", "constant_buffer", "backend_delegate_data", "segments",
                             "constant_segment", "mutable_data_segments", "named_data"))
EXECUTION_PLAN = Layout("ExecutionPlan", ("name", "container_meta_type", "values", "inputs", "outputs", "chains",
                                          "operators", "delegates", "non_const_buffer_sizes",
                                          "non_const_buffer_device"))
CHAIN = Layout("Chain", ("inputs", "outputs", "instructions", "stacktrace"))
INSTRUCTION = Layout("Instruction", ("instr_args_type", "instr_args"))
KERNEL_CALL = Layout("KernelCall", ("op_index", "args"))
DELEGATE_CALL = Layout("DelegateCall", ("delegate_index", "args"))
OPERATOR = Layout("Operator", ("name", "overload"))
BACKEND_DELEGATE = Layout("BackendDelegate", ("id", "processed", "compile_specs"))
DATA_REFERENCE = Layout("BackendDelegateDataReference", ("location", "index"))
INLINE_DATA = Layout("BackendDelegateInlineData", ("data",))
BUFFER = Layout("Buffer", ("storage",))
DATA_SEGMENT = Layout("DataSegment", ("offset", "size"))
SUBSEGMENT_OFFSETS = Layout("SubsegmentOffsets", ("segment_index", "offsets"))
LAYOUTS = (PROGRAM, EXECUTION_PLAN, CHAIN, INSTRUCTION, KERNEL_CALL, DELEGATE_CALL, OPERATOR, BACKEND_DELEGATE,
           DATA_REFERENCE, INLINE_DATA, BUFFER, DATA_SEGMENT, SUBSEGMENT_OFFSETS)

INSTRUCTION_KINDS = ("KernelCall", "DelegateCall", "MoveCall", "JumpFalseCall", "FreeCall")
"""The members of the InstructionArguments union, in schema order."""
INLINE, SEGMENT = 0, 1
"""DataLocation: where a delegate's processed bytes are."""

EXTENDED_HEADER_MAGIC = b"eh00"


@dataclass(frozen=True)
class Instruction:
    """One instruction of a chain: its kind, and the operator (KernelCall) or delegate (DelegateCall) it calls."""

    kind: str
    index: Optional[int] = None


@dataclass(frozen=True)
class Delegate:
    """A backend delegate of a method, with its processed bytes."""

    id: str
    data: bytes


@dataclass(frozen=True)
class ExecutionPlan:
    """One method: the kernels it calls, its delegates, its instructions in order, its planned buffers."""

    name: str
    operators: tuple[str, ...]
    """Kernel names as ``aten::convolution.out`` (name and overload)."""
    delegates: tuple[Delegate, ...]
    instructions: tuple[Instruction, ...]
    """Every chain's instructions, in order: an instruction's index here is the runtime's instruction id."""
    non_const_buffer_sizes: tuple[int, ...]


@dataclass(frozen=True)
class Program:
    """What rebirth reads of a .pte's program."""

    execution_plan: tuple[ExecutionPlan, ...]
    constant_buffer_bytes: int
    """The constant buffers' bytes: inline in the flatbuffer, or cut out of the constant segment."""


def read_program(data: bytes) -> Program:
    """The program of a whole .pte file's bytes.

    Raises:
        FlatbufferError: the program flatbuffer or its segments are damaged.
    """
    program_size, segment_base = _extended_header(data)
    program = root(data[:program_size], PROGRAM, IDENTIFIER)
    segments = _segments(program, memoryview(data)[segment_base:]) if segment_base else None
    inline = tuple(entry.bytes("data") or b"" for entry in program.tables("backend_delegate_data", INLINE_DATA) or ())
    return Program(tuple(_plan(plan, inline, segments) for plan in program.tables("execution_plan", EXECUTION_PLAN)
                         or ()), _constant_bytes(program, segments))


def _extended_header(data: bytes) -> tuple[int, int]:
    """The program's size and where the segments start (0: none), as the exir deserializer reads them."""
    if len(data) < 40 or data[8:12] != EXTENDED_HEADER_MAGIC or struct.unpack_from("<I", data, 12)[0] < 24:
        return len(data), 0
    return struct.unpack_from("<QQ", data, 16)


def _segments(program: Table, segment_data: memoryview) -> tuple[memoryview, ...]:
    segments = []
    for index, segment in enumerate(program.tables("segments", DATA_SEGMENT) or ()):
        offset, size = segment.scalar("offset", "<Q"), segment.scalar("size", "<Q")
        if offset + size > len(segment_data):
            raise FlatbufferError(f"segment {index} ({size} bytes at {offset}) overflows the "
                                  f"{len(segment_data)} bytes of segment data")
        segments.append(segment_data[offset: offset + size])
    return tuple(segments)


def _plan(plan: Table, inline: tuple[bytes, ...], segments: Optional[tuple[memoryview, ...]]) -> ExecutionPlan:
    operators = tuple(_operator(op) for op in plan.tables("operators", OPERATOR) or ())
    delegates = tuple(_delegate(delegate, inline, segments) for delegate in plan.tables("delegates", BACKEND_DELEGATE)
                      or ())
    instructions = tuple(_instruction(instruction) for chain in plan.tables("chains", CHAIN) or ()
                         for instruction in chain.tables("instructions", INSTRUCTION) or ())
    for instruction in instructions:
        called = operators if instruction.kind == "KernelCall" else delegates
        if instruction.index is not None and not 0 <= instruction.index < len(called):
            raise FlatbufferError(f"a {instruction.kind} calls {instruction.index} of {len(called)}")
    return ExecutionPlan(plan.string("name") or "", operators, delegates, instructions,
                         plan.scalars("non_const_buffer_sizes", "<q") or ())


def _operator(operator: Table) -> str:
    name, overload = operator.string("name") or "", operator.string("overload")
    return f"{name}.{overload}" if overload else name


def _instruction(instruction: Table) -> Instruction:
    kind, arguments = instruction.union("instr_args", INSTRUCTION_KINDS,
                                        {"KernelCall": KERNEL_CALL, "DelegateCall": DELEGATE_CALL})
    if arguments is None:
        return Instruction(kind)
    return Instruction(kind, arguments.scalar("op_index" if kind == "KernelCall" else "delegate_index", "<i"))


def _delegate(delegate: Table, inline: tuple[bytes, ...], segments: Optional[tuple[memoryview, ...]]) -> Delegate:
    identifier = delegate.string("id") or ""
    processed = delegate.table("processed", DATA_REFERENCE)
    location = processed.scalar("location", "<b") if processed else INLINE
    index = processed.scalar("index", "<I") if processed else 0
    if location == INLINE:
        if index >= len(inline):
            raise FlatbufferError(f"delegate {identifier}: inline data {index} of {len(inline)}")
        return Delegate(identifier, inline[index])
    if segments is None:  # a segment reference in a .pte without segments: exir reads no bytes either
        return Delegate(identifier, b"")
    if index >= len(segments):
        raise FlatbufferError(f"delegate {identifier}: segment {index} of {len(segments)}")
    return Delegate(identifier, bytes(segments[index]))


def _constant_bytes(program: Table, segments: Optional[tuple[memoryview, ...]]) -> int:
    constant = program.table("constant_segment", SUBSEGMENT_OFFSETS)
    offsets = constant.scalars("offsets", "<Q") if constant else None
    if segments is None or not offsets:
        return sum(buffer.count("storage") for buffer in program.tables("constant_buffer", BUFFER) or ())
    assert constant is not None
    index = constant.scalar("segment_index", "<I")
    if index >= len(segments):
        raise FlatbufferError(f"the constant segment is segment {index} of {len(segments)}")
    size = len(segments[index])
    # exir cuts each constant from its offset to the next one's (the last to the segment's end).
    return sum(len(range(size)[start:end]) for start, end in zip(offsets, offsets[1:] + (size,)))
