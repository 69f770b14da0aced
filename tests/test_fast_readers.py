"""rebirth reads ETDumps, .pte programs and XNNPACK headers in place, without ExecuTorch's compiler: the same
Trace and the same .pte fields as the Inspector and exir's deserializer give (tests/exir_readers.py), on real
runs and on ETDumps written to exercise every rule of the Inspector's grouping."""

import importlib.util
import json
import random
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from rebirth.contract.errors import EmptyETDumpError, ModelFileError
from rebirth.contract.files import sha256_file
from rebirth.models import program as program_reader
from rebirth.models import pte
from rebirth.profiler import etdump, xnnpack
from rebirth.profiler.trace import read_trace
from tests.exir_readers import fields_of, read_pte_with_exir, read_trace_with_inspector, xnnpack_graph_with_exir

ZOO_SMALL = [("googlenet-small", "xnnpack"), ("googlenet-bn-small", "xnnpack"), ("alexnet-small", "xnnpack"),
             ("resnet50-small", "xnnpack"), ("mobilenet_v2-small", "xnnpack"), ("googlenet-small", "portable")]


def _shipped(relative: str) -> Path:
    """A file of the installed executorch package (its schemas, its flatc)."""
    spec = importlib.util.find_spec("executorch")
    assert spec is not None and spec.submodule_search_locations
    return next(Path(folder) / relative for folder in spec.submodule_search_locations
                if (Path(folder) / relative).is_file())


@dataclass(frozen=True)
class Traced:
    pte: Path
    etdump: Path


def _trace(pte_path: Path, folder: Path) -> Traced:
    """Run a .pte on ``local`` (the native runner) and keep its ETDump."""
    from rebirth.devices import RunRequest
    from rebirth.devices.local import LocalDevice

    with LocalDevice() as device, tempfile.TemporaryDirectory() as workdir:
        result = device.run(RunRequest(pte_path.resolve(), iterations=3, warmup=1), Path(workdir))
        kept = folder / f"{pte_path.stem}.etdp"
        kept.write_bytes(result.etdump_path.read_bytes())
    return Traced(pte_path, kept)


@pytest.fixture(scope="module")
def firenet_runs(firenet_ptes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("firenet_runs")
    return {backend: _trace(path, folder) for backend, path in firenet_ptes.items()}


@pytest.fixture(scope="module")
def zoo_runs(tmp_path_factory):
    """The zoo's small networks, each exported once (rebirth's cache) and run once."""
    from rebirth.contract.quiet import quiet
    from rebirth.models import ensure_pte, parse_spec

    folder = tmp_path_factory.mktemp("zoo_runs")
    runs = {}
    for name, backend in ZOO_SMALL:
        with quiet():
            exported = ensure_pte(parse_spec(f"zoo:{name}"), backend)
        runs[(name, backend)] = _trace(exported.pte, folder)
    return runs


def _same_as_exir(traced: Traced) -> None:
    assert read_trace(traced.etdump) == read_trace_with_inspector(traced.etdump)
    read = pte.read_pte(traced.pte)
    assert fields_of(read) == read_pte_with_exir(traced.pte)
    assert (read.sha256, read.size_bytes) == (sha256_file(traced.pte), traced.pte.stat().st_size)
    for blob in read.delegate_blobs():
        if blob.backend == "XnnpackBackend":
            assert xnnpack.graph_flatbuffer(blob.data) == xnnpack_graph_with_exir(blob.data)


@pytest.mark.parametrize("backend", ["portable", "xnnpack"])
def test_firenet_reads_as_the_inspector_and_exir_read_it(firenet_runs, backend):
    _same_as_exir(firenet_runs[backend])
    trace = read_trace(firenet_runs[backend].etdump)
    assert trace.executions == 4 and any(e.delegated for e in trace.events) == (backend == "xnnpack")


@pytest.mark.slow
@pytest.mark.parametrize("model", ZOO_SMALL, ids=lambda m: f"{m[0]}-{m[1]}")
def test_the_zoos_small_networks_read_as_the_inspector_and_exir_read_them(zoo_runs, model):
    _same_as_exir(zoo_runs[model])


@pytest.mark.parametrize("backend", ["portable", "xnnpack"])
def test_a_pte_with_inline_delegates_or_no_segments_at_all(firenet_ptes, tmp_path, backend):
    """exir's serializer can leave a delegate's bytes and the constants inside the flatbuffer (no extended
    header then): both readers find them there."""
    from executorch.exir._serialize._flatbuffer_program import _program_to_flatbuffer
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    from rebirth.contract.quiet import quiet

    read = deserialize_pte_binary(firenet_ptes[backend].read_bytes())
    with quiet():  # exir reads its schema with a deprecated importlib.resources call
        variants = {"inline_delegates": bytes(serialize_pte_binary(read, extract_delegate_segments=False)),
                    "no_segments": bytes(_program_to_flatbuffer(read.program).data)}
    assert variants["inline_delegates"][8:12] == b"eh00" and variants["no_segments"][8:12] != b"eh00"
    for name, data in variants.items():
        path = tmp_path / f"{name}.pte"
        path.write_bytes(data)
        read = fields_of(pte.read_pte(path))
        assert read == read_pte_with_exir(path), name
        assert len(read.delegate_blobs) == (backend == "xnnpack") and all(blob for _, _, blob in read.delegate_blobs)
    assert pte.read_pte(tmp_path / "no_segments.pte").constant_bytes > 0


def test_reading_imports_neither_the_compiler_nor_the_inspector_nor_torch(firenet_runs):
    traced = firenet_runs["xnnpack"]
    script = f"""
import sys
from rebirth.models.pte import read_pte
from rebirth.profiler.trace import read_trace
from rebirth.profiler.xnnpack import parse_graph

trace = read_trace({str(traced.etdump)!r})
program = read_pte({str(traced.pte)!r})
nodes = [node for blob in program.delegate_blobs() for node in parse_graph(blob.data)]
print(len(trace.events), program.backend, len(nodes))
print(*sorted(m for m in ("executorch.exir", "executorch.devtools.inspector", "torch") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    counts, imported = done.stdout.splitlines()
    events, backend, nodes = counts.split()
    assert int(events) > 10 and backend == "xnnpack" and int(nodes) > 10
    assert imported == ""


# ETDumps written from JSON with flatc and the shipped schema, each exercising one rule of the Inspector.

def _profile(name, instruction, start, end, delegate=None, chain=0):
    event = {"name": name, "chain_index": chain, "instruction_id": instruction, "start_time": start, "end_time": end}
    if isinstance(delegate, int):
        event["delegate_debug_id_int"] = delegate
    elif delegate is not None:
        event["delegate_debug_id_str"] = delegate
    return {"profile_event": {k: v for k, v in event.items() if v is not None}}


def _debug(name, instruction, output=False):
    entry = {"val": "Int", "int_value": {"int_val": 7}}
    if output:
        entry["output"] = {"bool_val": True}
    return {"debug_event": {"name": name, "instruction_id": instruction, "debug_entry": entry}}


def _run(events, name="Execute"):
    return {"name": name, "events": events} if events is not None else {"name": name}


LOAD = _run([_profile("Method::init", -1, 0, 5_000_000), _profile("Program::load_method", -1, 0, 6_000_000)],
            "Default")


def _execution(offset=0):
    return [_profile("native_call_convolution.out", 0, 100 + offset, 2_100_000 + offset),
            _profile("OPERATOR_CALL", 0, 90, 2_200_000 + offset),
            _profile("DELEGATE_CALL", 1, 2_300_000, 4_000_000 + offset),
            _profile(None, 1, 2_400_000, 2_900_000 + offset, delegate="Convolution (NHWC, F32) IGEMM #1"),
            _profile(None, 1, 2_900_000, 3_100_000 + offset, delegate=3),
            _profile("Method::execute", -1, 0, 4_500_000 + offset)]


ETDUMPS = {
    "runs_of_one_signature_form_one_block": [LOAD, _run(_execution()), _run(_execution(7)), _run(_execution(11))],
    "a_run_of_other_events_is_a_block_of_its_own": [LOAD, _run(_execution()), _run(_execution()[:3]),
                                                    _run(_execution(5))],
    "the_same_signature_twice_in_a_run_keeps_the_last": [
        _run([_profile("op", 2, 0, 1000), _profile("op", 2, 0, 9000), _profile("other", 3, 9000, 9500)])] * 2,
    "a_32_bit_clock_wraps_round": [_run([_profile("op", 0, 4_294_967_000, 200),
                                         _profile(None, 1, 4_294_967_000, 300, delegate="x")])],
    "debug_events_name_their_instruction_and_outputs_do_not_count": [
        _run([_profile("op", 0, 0, 1000), _debug("aten::add", 0), _debug("out", -1, output=True),
              _profile(None, 1, 0, 2000, delegate=5), _debug(None, 1), _debug("lone", 4)])] * 2,
    "runs_without_events_and_unnamed_events": [_run(None), _run([]),
                                               _run([_profile(None, 0, 0, 10), _profile("", 1, 0, 20)])],
}


def _write_etdump(runs, folder: Path) -> Path:
    schema = _shipped("devtools/etdump/etdump_schema_flatcc.fbs")
    source = folder / "etdump.json"
    source.write_text(json.dumps({"version": 0, "run_data": runs}))
    subprocess.run([str(_shipped("data/bin/flatc")), "--binary", "--size-prefixed", "-o",
                    str(folder), str(schema), str(source)], check=True, capture_output=True)
    return folder / "etdump.etdp"


@pytest.mark.parametrize("case", ETDUMPS)
def test_written_etdumps_read_as_the_inspector_reads_them(tmp_path, case):
    path = _write_etdump(ETDUMPS[case], tmp_path)
    assert read_trace(path) == read_trace_with_inspector(path)


def test_what_the_written_etdumps_hold(tmp_path):
    """The cases above hold what they are named after (else the two readers could agree on little)."""
    def read(case):
        return read_trace(_write_etdump(ETDUMPS[case], tmp_path))

    one = read("runs_of_one_signature_form_one_block")
    assert [len(e.raw_ms) for e in one.events] == [3] * 6
    assert [e.name for e in one.load_events] == ["Method::init", "Program::load_method"]
    assert [e.name for e in one.events[3:5]] == ["Convolution (NHWC, F32) IGEMM #1", "3"]
    assert [e.delegated for e in one.events] == [False, False, False, True, True, False]
    assert one.events[0].raw_ms == (2.0999,) * 3 and one.executions == 3
    assert len(read("a_run_of_other_events_is_a_block_of_its_own").events) == 6 + 3
    assert read("the_same_signature_twice_in_a_run_keeps_the_last").events[0].raw_ms == (0.009, 0.009)
    wrapped = read("a_32_bit_clock_wraps_round").events
    assert wrapped[0].raw_ms == ((2**32 - 1 - 4_294_967_000 + 200) / 1e6,) and wrapped[1].delegated
    debug = read("debug_events_name_their_instruction_and_outputs_do_not_count").events
    assert [e.name for e in debug] == ["aten::add", "5"] and not debug[0].delegated
    assert [e.name for e in read("runs_without_events_and_unnamed_events").events] == ["", ""]


def test_an_event_that_ends_long_before_it_starts_is_a_damaged_etdump(tmp_path):
    path = _write_etdump([_run([_profile("op", 0, 2**33, 10)])], tmp_path)
    for reader in (read_trace, read_trace_with_inspector):
        with pytest.raises(ModelFileError, match="not a readable ETDump"):
            reader(path)


@pytest.mark.parametrize("runs", [[], [_run([])], [_run([{"allocation_event": {"allocator_id": 0}}])],
                                  [_run([_debug("only", 0)])]],
                         ids=["no_runs", "no_events", "allocation_only", "debug_only"])
def test_etdumps_without_timings_fail_as_they_did(tmp_path, runs):
    path = _write_etdump(runs, tmp_path)
    errors = []
    for reader in (read_trace, read_trace_with_inspector):
        with pytest.raises((EmptyETDumpError, ModelFileError)) as caught:
            reader(path)
        errors.append(type(caught.value))
    assert errors[0] is errors[1]


# Damaged files: one clear error, never a traceback.

def _damaged(good: bytes, seed: int, within: int) -> bytes:
    """``good`` with one to three bytes of its first ``within`` flipped."""
    rng = random.Random(seed)
    data = bytearray(good)
    for _ in range(rng.choice((1, 1, 3))):
        data[rng.randrange(within)] ^= rng.choice((0xFF, 0x80, 0x01))
    return bytes(data)


@pytest.mark.parametrize("damage", ["empty", "half", "identifier", "garbage", "no_prefix"])
def test_a_damaged_etdump_is_a_model_file_error_as_before(firenet_runs, tmp_path, damage):
    good = firenet_runs["xnnpack"].etdump.read_bytes()
    data = {"empty": b"", "half": good[: len(good) // 2], "identifier": good[:8] + b"XX00" + good[12:],
            "garbage": random.Random(1).randbytes(3000), "no_prefix": good[4:]}[damage]
    path = tmp_path / "damaged.etdp"
    path.write_bytes(data)
    expected = EmptyETDumpError if damage == "empty" else ModelFileError
    for reader in (read_trace, read_trace_with_inspector):
        with pytest.raises(expected) as caught:
            reader(path)
        assert type(caught.value) is expected
        assert ("-DEXECUTORCH_ENABLE_EVENT_TRACER=ON" in str(caught.value)) == (damage == "empty")


def test_bytes_flipped_anywhere_read_or_fail_cleanly(firenet_runs, tmp_path):
    """The readers check every offset: a flipped byte reads as before, reads other values, or is a
    ModelFileError (flatc, which the Inspector runs, crashed on some of these). In a .pte, the bytes of the
    program flatbuffer are flipped, not the weights after it."""
    for kind, reader in (("etdump", read_trace), ("pte", pte.read_pte)):
        good = getattr(firenet_runs["xnnpack"], kind).read_bytes()
        within = pte.check_pte(firenet_runs["xnnpack"].pte).program_size if kind == "pte" else len(good)
        failed = 0
        for seed in range(150):
            path = tmp_path / f"{seed}.{kind}"
            path.write_bytes(_damaged(good, seed, within))
            try:
                reader(path)
            except ModelFileError:
                failed += 1
        assert 0 < failed < 150, kind


def test_a_damaged_pte_program_is_a_model_file_error(firenet_ptes, tmp_path):
    good = firenet_ptes["xnnpack"].read_bytes()
    root = int.from_bytes(good[:4], "little")
    broken = tmp_path / "broken.pte"
    broken.write_bytes(good[:root] + b"\xff\xff\xff\x7f" + good[root + 4:])  # the root table's vtable offset
    with pytest.raises(ModelFileError, match="cannot parse the .pte program"):
        pte.read_pte(broken)


def test_an_xnnpack_blob_without_its_header_is_refused():
    with pytest.raises(ValueError, match="XH00"):
        xnnpack.graph_flatbuffer(b"\0" * 4 + b"XN01" + b"\0" * 40)
    with pytest.raises(ValueError, match="XH00"):
        xnnpack.graph_flatbuffer(b"\0\0\0\0XH00")


# The layouts name the fields in the shipped schemas' order: a field's slot is its place there.

def _schema_fields(schema: str) -> dict[str, tuple[str, ...]]:
    text = re.sub(r"//[^\n]*", "", schema)
    unions = set(re.findall(r"\bunion\s+(\w+)", text))
    tables = {}
    for name, body in re.findall(r"\btable\s+(\w+)\s*\{([^}]*)\}", text):
        fields: list[str] = []
        for declaration in body.split(";"):
            found = re.match(r"\s*(\w+)\s*:\s*\[?([\w.]+)", declaration)
            if found:
                field, kind = found.groups()
                fields += [f"{field}_type", field] if kind in unions else [field]
        tables[name] = tuple(fields)
    return tables


@pytest.mark.parametrize("module, schema", [(etdump, "devtools/etdump/etdump_schema_flatcc.fbs"),
                                            (program_reader, "schema/program.fbs")])
def test_the_layouts_follow_the_shipped_schemas(module, schema):
    declared = _schema_fields(_shipped(schema).read_text())
    for layout in module.LAYOUTS:
        assert declared[layout.name][: len(layout.fields)] == layout.fields, layout.name
    assert module.IDENTIFIER.decode() in _shipped(schema).read_text()


def test_the_instruction_kinds_follow_the_shipped_schema():
    text = _shipped("schema/program.fbs").read_text()
    members = re.search(r"union\s+InstructionArguments\s*\{([^}]*)\}", text).group(1)
    assert tuple(re.findall(r"\w+", members)) == program_reader.INSTRUCTION_KINDS
