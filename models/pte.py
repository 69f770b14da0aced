"""Reading .pte files: a light header check and the program's contents (no torch, no executorch import)."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from rebirth.contract.errors import ModelFileError
from rebirth.models.flatbuffer import FlatbufferError
from rebirth.models.program import ExecutionPlan, Program, read_program

PTE_IDENTIFIER = b"ET12"
EXTENDED_HEADER_MAGIC = b"eh00"


@dataclass(frozen=True)
class PteHeader:
    """What the first bytes of a .pte say about its size."""

    file_size: int
    program_size: int
    segment_base_offset: int
    segment_data_size: int


@dataclass(frozen=True)
class DelegateBlob:
    """One delegate call of a method: which instruction, which backend, its processed bytes."""

    instruction: int
    backend: str
    data: bytes


def check_pte(path: str | Path) -> PteHeader:
    """Check that ``path`` is a complete .pte without loading it.

    Raises:
        ModelFileError: the file is missing, not a .pte, or truncated.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file")
    with path.open("rb") as stream:
        head = stream.read(64)
    size = path.stat().st_size
    if len(head) < 8 or head[4:8] != PTE_IDENTIFIER:
        raise ModelFileError(f"{path}: not an ExecuTorch .pte file (no ET12 identifier)")
    header = _extended_header(head, size)
    needed = max(header.program_size, header.segment_base_offset + header.segment_data_size)
    if size < needed:
        raise ModelFileError(f"{path}: truncated .pte ({size} of {needed} bytes)")
    return header


def _extended_header(head: bytes, size: int) -> PteHeader:
    if head[8:12] != EXTENDED_HEADER_MAGIC:
        return PteHeader(size, size, 0, 0)
    length = struct.unpack_from("<I", head, 12)[0]
    program_size, segment_base = struct.unpack_from("<QQ", head, 16)
    segment_size = struct.unpack_from("<Q", head, 32)[0] if length >= 32 else 0
    return PteHeader(size, program_size, segment_base if segment_size else 0, segment_size)


@dataclass(frozen=True)
class PteFile:
    """A .pte read once: where it is, its bytes' hash and size, and its program."""

    path: Path
    sha256: str
    size_bytes: int
    program: Program
    constant_bytes: int = 0
    """Constant data (weights, delegate payloads): the segments after the program, or, in a .pte without
    segments, the constants inlined in it."""

    @property
    def backend(self) -> str:
        return backend_of(self.program)

    def planned_buffer_sizes(self) -> tuple[int, ...]:
        return planned_buffer_sizes(self.program)

    def delegate_blobs(self) -> list[DelegateBlob]:
        return delegate_blobs(self.program)

    def kernel_names(self) -> dict[int, str]:
        return kernel_names(self.program)


def read_pte(path: str | Path) -> PteFile:
    """Check, hash and read a .pte once.

    Raises:
        ModelFileError: the file is missing, truncated, or its program cannot be parsed.
    """
    path = Path(path)
    header = check_pte(path)
    data = path.read_bytes()
    program = _parse(path, data)
    return PteFile(path, hashlib.sha256(data).hexdigest(), len(data), program,
                   header.segment_data_size or program.constant_buffer_bytes)


def load_program(path: str | Path) -> Program:
    """Read the program of a .pte.

    Raises:
        ModelFileError: the file is not a .pte or its program cannot be parsed.
    """
    check_pte(path)
    return _parse(Path(path), Path(path).read_bytes())


def _parse(path: Path, data: bytes) -> Program:
    try:
        return read_program(data)
    except FlatbufferError as error:
        raise ModelFileError(f"{path}: cannot parse the .pte program ({error})") from None


def method_plan(program: Program, method: str = "forward") -> ExecutionPlan:
    """The execution plan of one method."""
    for plan in program.execution_plan:
        if plan.name == method:
            return plan
    names = ", ".join(plan.name for plan in program.execution_plan)
    raise ModelFileError(f"the .pte has no method {method!r} (it has: {names})")


def planned_buffer_sizes(program: Program, method: str = "forward") -> tuple[int, ...]:
    """Bytes of each memory-planned buffer of ``method`` (``non_const_buffer_sizes``)."""
    return method_plan(program, method).non_const_buffer_sizes


def operator_names(program: Program, method: str = "forward") -> list[str]:
    """The kernel names a method calls, as ``aten::convolution.out``."""
    return list(method_plan(program, method).operators)


def delegate_blobs(program: Program, method: str = "forward") -> list[DelegateBlob]:
    """The delegate calls of ``method`` in execution order, with their processed bytes."""
    plan = method_plan(program, method)
    return [DelegateBlob(index, plan.delegates[instruction.index].id, plan.delegates[instruction.index].data)
            for index, instruction in enumerate(plan.instructions)
            if instruction.kind == "DelegateCall" and instruction.index is not None]


def kernel_names(program: Program, method: str = "forward") -> dict[int, str]:
    """Instruction index -> the kernel it calls, as ``aten::convolution.out``."""
    plan = method_plan(program, method)
    return {index: plan.operators[instruction.index] for index, instruction in enumerate(plan.instructions)
            if instruction.kind == "KernelCall" and instruction.index is not None}


def backend_of(program: Program, method: str = "forward") -> str:
    """``xnnpack``, ``portable`` or the delegate ids joined with ``+``."""
    ids = sorted({delegate.id for delegate in method_plan(program, method).delegates})
    if not ids:
        return "portable"
    names = [i.removesuffix("Backend").lower() for i in ids]
    return "+".join(names)
