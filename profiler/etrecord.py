"""Source nodes out of an ETRecord: debug handle -> aten op, layer path, module type."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rebirth.contract.errors import ModelFileError
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


def load_source_map(path: str | Path, method: str = "forward") -> SourceMap:
    """What an ETRecord says of ``method``, read from the JSON that torch.export's serializer wrote into it (the
    edge program's nodes with their debug handles and module stacks, and the debug-handle and delegate maps):
    no import of torch or ExecuTorch's compiler, which cost seconds. An ETRecord written some other way is read
    through ExecuTorch's devtools instead.

    Raises:
        ModelFileError: the file is missing or not an ETRecord.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such ETRecord")
    try:
        return _read_serialized(path, method)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError):
        return _parse(path, method)


def _read_serialized(path: Path, method: str) -> SourceMap:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        member = next(name for name in (f"edge_dialect_exported_program/{method}", "edge_dialect_exported_program")
                      if name in names)
        graph = json.loads(archive.read(member))["graph_module"]["graph"]
        handles = json.loads(archive.read("debug_handle_map")).get(method, {}) if "debug_handle_map" in names else {}
        delegates = json.loads(archive.read("delegate_map")).get(method, {}) if "delegate_map" in names else {}
    nodes: dict[int, SourceNode] = {}
    for node in graph["nodes"]:
        meta, op = node.get("metadata", {}), _serialized_op(node["target"])
        handle = meta.get("debug_handle")
        if handle is None or op is None or int(handle) in nodes:
            continue
        layer, module_type = _serialized_layer(meta.get("nn_module_stack", ""))
        nodes[int(handle)] = SourceNode(int(handle), op, layer, module_type)
    instructions = {int(k): tuple(v) if isinstance(v, list) else (int(v),) for k, v in handles.items()}
    return SourceMap(nodes, instructions, {int(k): v.get("name", "") for k, v in delegates.items()})


def _serialized_op(target: str) -> Optional[str]:
    """``executorch.exir.dialects.edge.ops.aten.convolution.default`` -> ``aten.convolution`` and
    ``...aten.mean.dim`` -> ``aten.mean.dim``, as the node's target names itself in the graph (``getitem`` is
    none: it only picks an output)."""
    if "getitem" in target.rsplit(".", 1)[-1]:
        return None
    if ".ops." in target:
        namespace, op, *overload = target.split(".ops.", 1)[1].split(".")
        return ".".join([namespace, op] + [name for name in overload if name != "default"])
    return target.rsplit(".", 1)[-1]


def _serialized_layer(stack: str) -> tuple[Optional[str], Optional[str]]:
    """The deepest module path of a serialized ``nn_module_stack`` (``key,path,type;...``, split as torch's
    deserializer splits it: commas inside brackets belong to the field)."""
    for entry in reversed([entry for entry in stack.split(";") if entry]):
        _, path, module_type = _split_fields(entry)
        if path:
            return path, module_type.rsplit(".", 1)[-1]
    return None, None


def _split_fields(entry: str) -> list[str]:
    fields, start, depth = [], 0, 0
    for index, char in enumerate(entry):
        depth += (char in "[(") - (char in ")]")
        if char == "," and depth == 0:
            fields.append(entry[start:index])
            start = index + 1
    fields.append(entry[start:])
    if len(fields) != 3:
        raise ValueError(f"not a module stack entry: {entry!r}")
    return fields


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
