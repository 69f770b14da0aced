"""Source nodes out of an ETRecord: debug handle -> aten op, layer path, module type."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rebirth.contract.cache import cache_root
from rebirth.contract.errors import ModelFileError
from rebirth.contract.files import sha256_file, write_json_atomic
from rebirth.contract.quiet import quiet


@dataclass(frozen=True)
class SourceNode:
    """The graph node a debug handle points at."""

    debug_handle: int
    op: str
    layer: Optional[str]
    module_type: Optional[str]


@dataclass(frozen=True)
class SourceMap:
    """What an ETRecord tells about one method of the program it was made with."""

    nodes: dict[int, SourceNode]
    instructions: dict[int, tuple[int, ...]]
    delegates: dict[int, str] = field(default_factory=dict)

    def node(self, handle: Optional[int]) -> Optional[SourceNode]:
        return self.nodes.get(handle) if handle is not None else None


CACHE_VERSION = 1
"""Bumped when what a cached source map holds changes: older cache files are then read again from the ETRecord."""


def load_source_map(path: str | Path, method: str = "forward") -> SourceMap:
    """What an ETRecord says of ``method``: read once, then from a small cache keyed by the ETRecord's bytes
    (reading an ETRecord imports ExecuTorch's compiler, which costs seconds; the cached map costs milliseconds).

    Raises:
        ModelFileError: the file is missing or not an ETRecord.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such ETRecord")
    cached = cache_root() / "source-maps" / f"{sha256_file(path)}-{method}-v{CACHE_VERSION}.json"
    try:
        return _from_json(json.loads(cached.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    source_map = _parse(path, method)
    try:
        write_json_atomic(cached, _to_json(source_map))
    except OSError:  # a cache that cannot be written only costs the next run its time
        pass
    return source_map


def _to_json(source_map: SourceMap) -> dict:
    return {"nodes": [dataclasses.asdict(node) for node in source_map.nodes.values()],
            "instructions": {str(k): list(v) for k, v in source_map.instructions.items()},
            "delegates": {str(k): v for k, v in source_map.delegates.items()}}


def _from_json(data: dict) -> SourceMap:
    nodes = {int(node["debug_handle"]): SourceNode(**node) for node in data["nodes"]}
    return SourceMap(nodes, {int(k): tuple(v) for k, v in data["instructions"].items()},
                     {int(k): v for k, v in data["delegates"].items()})


def _parse(path: Path, method: str) -> SourceMap:
    """The source map out of the ETRecord itself (through ExecuTorch's devtools and compiler)."""
    from executorch.devtools.etrecord import parse_etrecord

    try:
        with quiet():
            record = parse_etrecord(str(path))
    except Exception as error:  # zip, pickle and torch.export errors alike
        raise ModelFileError(f"{path}: not a readable ETRecord ({type(error).__name__}: {error})") from None
    program = record.edge_dialect_program
    if isinstance(program, dict):
        program = program.get(method)
    if program is None:
        raise ModelFileError(f"{path}: the ETRecord has no edge program for {method!r}")
    handle_map = (record._debug_handle_map or {}).get(method, {})
    instructions = {int(k): tuple(v) if isinstance(v, list) else (int(v),) for k, v in handle_map.items()}
    delegates = {int(k): v.get("name", "") for k, v in ((record._delegate_map or {}).get(method, {})).items()}
    return SourceMap(_nodes(program.graph_module), instructions, delegates)


def _nodes(graph_module) -> dict[int, SourceNode]:
    nodes: dict[int, SourceNode] = {}
    for node in graph_module.graph.nodes:
        handle = node.meta.get("debug_handle")
        if node.op != "call_function" or handle is None or handle in nodes:
            continue
        if getattr(node.target, "__name__", "") == "getitem":
            continue
        layer, module_type = _layer(node)
        nodes[int(handle)] = SourceNode(int(handle), _op_name(node.target), layer, module_type)
    return nodes


def _op_name(target) -> str:
    name = getattr(target, "_name", None) or getattr(target, "__name__", None) or str(target)
    return str(name).replace("::", ".")


def _layer(node) -> tuple[Optional[str], Optional[str]]:
    """The deepest nn.Module path of a node; functional ops in the root module have none."""
    stack = node.meta.get("nn_module_stack") or {}
    for path, module_type in reversed(list(stack.values())):
        if path:
            return str(path), str(module_type).rsplit(".", 1)[-1]
    return None, None
