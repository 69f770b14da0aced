"""Reading .pte files: a light header check (no torch) and the program's contents."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebirth.contract.errors import ModelFileError
from rebirth.contract.files import sha256_file

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
    """A .pte read once: where it is, its bytes' hash and size, and the deserialized program."""

    path: Path
    sha256: str
    size_bytes: int
    program: Any
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
    """Check, hash and deserialize a .pte once (imports executorch.exir, so torch).

    Raises:
        ModelFileError: the file is missing, truncated, or its program cannot be parsed.
    """
    path = Path(path)
    header = check_pte(path)
    program = load_program(path)
    # The deserializer copies the constant segment back into constant_buffer: count one or the other.
    inline = sum(len(getattr(buffer, "storage", b"") or b"") for buffer in getattr(program, "constant_buffer", ()))
    return PteFile(path, sha256_file(path), path.stat().st_size, program, header.segment_data_size or inline)


def load_program(path: str | Path) -> Any:
    """Deserialize the program of a .pte (imports executorch.exir, so torch).

    Raises:
        ModelFileError: the flatbuffer cannot be parsed.
    """
    from executorch.exir._serialize._program import deserialize_pte_binary

    check_pte(path)
    try:
        pte = deserialize_pte_binary(Path(path).read_bytes())
    except Exception as error:  # the flatbuffer parser raises many unrelated types
        raise ModelFileError(f"{path}: cannot parse the .pte program ({type(error).__name__}: {error})") from None
    return getattr(pte, "program", pte)


def method_plan(program: Any, method: str = "forward") -> Any:
    """The execution plan of one method."""
    for plan in program.execution_plan:
        if plan.name == method:
            return plan
    names = ", ".join(plan.name for plan in program.execution_plan)
    raise ModelFileError(f"the .pte has no method {method!r} (it has: {names})")


def planned_buffer_sizes(program: Any, method: str = "forward") -> tuple[int, ...]:
    """Bytes of each memory-planned buffer of ``method`` (``non_const_buffer_sizes``)."""
    return tuple(int(size) for size in method_plan(program, method).non_const_buffer_sizes)


def operator_names(program: Any, method: str = "forward") -> list[str]:
    """The kernel names a method calls, as ``aten::convolution.out``."""
    plan = method_plan(program, method)
    return [f"{op.name}.{op.overload}" if op.overload else op.name for op in plan.operators]


def delegate_blobs(program: Any, method: str = "forward") -> list[DelegateBlob]:
    """The delegate calls of ``method`` in execution order, with their processed bytes."""
    from executorch.exir.schema import DataLocation, DelegateCall

    plan = method_plan(program, method)
    blobs = []
    instruction = 0
    for chain in plan.chains:
        for instr in chain.instructions:
            if isinstance(instr.instr_args, DelegateCall):
                delegate = plan.delegates[instr.instr_args.delegate_index]
                processed = delegate.processed
                if processed.location == DataLocation.INLINE:
                    data = program.backend_delegate_data[processed.index].data
                else:
                    data = getattr(program.segments[processed.index], "data", b"")
                blobs.append(DelegateBlob(instruction, delegate.id, bytes(data)))
            instruction += 1
    return blobs


def kernel_names(program: Any, method: str = "forward") -> dict[int, str]:
    """Instruction index -> the kernel it calls, as ``aten::convolution.out``."""
    from executorch.exir.schema import KernelCall

    plan = method_plan(program, method)
    operators = operator_names(program, method)
    kernels, instruction = {}, 0
    for chain in plan.chains:
        for instr in chain.instructions:
            if isinstance(instr.instr_args, KernelCall):
                kernels[instruction] = operators[instr.instr_args.op_index]
            instruction += 1
    return kernels


def backend_of(program: Any, method: str = "forward") -> str:
    """``xnnpack``, ``portable`` or the delegate ids joined with ``+``."""
    ids = sorted({delegate.id for delegate in method_plan(program, method).delegates})
    if not ids:
        return "portable"
    names = [i.removesuffix("Backend").lower() for i in ids]
    return "+".join(names)
