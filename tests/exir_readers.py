"""The oracle for rebirth's own readers: the ETDump through ExecuTorch's Inspector, the .pte through exir's
deserializer, an XNNPACK blob's header through the XNNPACK backend's class. These are the paths rebirth took
before it read the files in place; each imports ExecuTorch's compiler and torch, so only tests use them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rebirth.contract.errors import EmptyETDumpError, ModelFileError
from rebirth.contract.quiet import quiet
from rebirth.profiler.trace import LOAD_EVENTS, REBUILD_HINT, Trace, TraceEvent


def read_trace_with_inspector(etdump_path: str | Path) -> Trace:
    """What ``rebirth.profiler.trace.read_trace`` gave when it read the ETDump through the Inspector."""
    path = Path(etdump_path)
    if not path.exists() or path.stat().st_size == 0:
        raise EmptyETDumpError(f"{path}: empty ETDump: {REBUILD_HINT}")
    from executorch.devtools import Inspector

    try:
        with quiet():
            inspector = Inspector(etdump_path=str(path))
    except Exception as error:  # the flatcc parser raises assorted types on garbage
        raise ModelFileError(f"{path}: not a readable ETDump ({type(error).__name__}: {error})") from None
    events: list[TraceEvent] = []
    load_events: list[TraceEvent] = []
    for block in inspector.event_blocks:
        for event in block.events:
            if event.perf_data is None:
                continue
            target = load_events if event.name in LOAD_EVENTS else events
            target.append(TraceEvent(event.name, int(event._instruction_id or 0),
                                     tuple(float(x) for x in event.perf_data.raw),
                                     bool(event.is_delegated_op), len(target)))
    if not events:
        raise EmptyETDumpError(f"{path}: the ETDump has no profiling events: {REBUILD_HINT}")
    return Trace(tuple(events), tuple(load_events))


@dataclass(frozen=True)
class PteFields:
    """What rebirth reads of a .pte, in plain values both readers can give."""

    backend: str
    planned_buffer_sizes: tuple[int, ...]
    delegate_blobs: tuple[tuple[int, str, bytes], ...]
    kernel_names: dict[int, str]
    operator_names: tuple[str, ...]
    constant_bytes: int


def fields_of(pte_file) -> PteFields:
    """The fields of a ``rebirth.models.pte.PteFile``."""
    from rebirth.models import pte

    return PteFields(pte_file.backend, pte_file.planned_buffer_sizes(),
                     tuple((b.instruction, b.backend, b.data) for b in pte_file.delegate_blobs()),
                     pte_file.kernel_names(), tuple(pte.operator_names(pte_file.program)), pte_file.constant_bytes)


def read_pte_with_exir(path: str | Path) -> PteFields:
    """What ``rebirth.models.pte.read_pte`` gave when it deserialized the program with exir."""
    from executorch.exir._serialize._program import deserialize_pte_binary
    from executorch.exir.schema import DataLocation, DelegateCall, KernelCall

    from rebirth.models.pte import check_pte

    header = check_pte(path)
    program = deserialize_pte_binary(Path(path).read_bytes()).program
    plan = next(plan for plan in program.execution_plan if plan.name == "forward")
    operators = tuple(f"{op.name}.{op.overload}" if op.overload else op.name for op in plan.operators)
    blobs, kernels = [], {}
    instructions = [instruction for chain in plan.chains for instruction in chain.instructions]
    for index, instruction in enumerate(instructions):
        if isinstance(instruction.instr_args, DelegateCall):
            delegate = plan.delegates[instruction.instr_args.delegate_index]
            processed = delegate.processed
            if processed.location == DataLocation.INLINE:
                data = program.backend_delegate_data[processed.index].data
            else:
                data = getattr(program.segments[processed.index], "data", b"")
            blobs.append((index, delegate.id, bytes(data)))
        elif isinstance(instruction.instr_args, KernelCall):
            kernels[index] = operators[instruction.instr_args.op_index]
    ids = sorted({delegate.id for delegate in plan.delegates})
    backend = "+".join(i.removesuffix("Backend").lower() for i in ids) if ids else "portable"
    inline = sum(len(getattr(buffer, "storage", b"") or b"") for buffer in program.constant_buffer)
    return PteFields(backend, tuple(int(size) for size in plan.non_const_buffer_sizes), tuple(blobs), kernels,
                     operators, header.segment_data_size or inline)


def xnnpack_graph_with_exir(blob: bytes) -> bytes:
    """The XNNGraph flatbuffer of a delegate blob, located by the XNNPACK backend's own header class."""
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader

    header = XNNHeader.from_bytes(blob[: XNNHeader.EXPECTED_LENGTH])
    return blob[header.flatbuffer_offset: header.flatbuffer_offset + header.flatbuffer_size]
