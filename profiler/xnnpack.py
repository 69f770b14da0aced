"""Offline layer attribution for XNNPACK delegates.

XNNPACK fuses a whole partition into one delegate call and reports its own operator names
("Convolution (NHWC, F32) IGEMM #3") with no link to the source graph. ``per_op_mode``
restores the link but distorts the timings. Instead we read the serialized XNNPACK graph
out of the .pte (every XNode carries the debug handle of the aten node it came from), and
align the runtime's operator events with the XNodes in order: XNNPACK creates one operator
per remaining node, in node order, after fusing some nodes (a clamp into its convolution)
and expanding a few (a concatenation into copies).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import re
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rebirth.profiler.taxonomy import normalize

DEFAULT_DEBUG_HANDLE = 65535

HEADER_MAGIC = b"XH00"
HEADER_LENGTH = 30
"""The XNNHeader before a delegate's graph (``xnnpack_graph_serialize.py``): 4 zero bytes, the magic, its own
length (u16), the graph flatbuffer's offset and size (u32 each), the constant data's offset (u32) and size
(u64), little-endian. Read here by hand: the class that reads it imports the XNNPACK backend, so torch."""

# XNode type -> the XNNPACK operator names (normalized) it can run as.
OPERATOR_NAMES: dict[str, tuple[str, ...]] = {
    "XNNConv2d": ("convolution", "fully connected"),
    "XNNDepthwiseConv2d": ("convolution", "convolution dwconv"),
    "XNNConvTranspose2d": ("deconvolution",),
    "XNNFullyConnected": ("fully connected",),
    "XNNMaxPooling2d": ("max pooling", "argmax pooling"),
    "XNNArgMaxPooling2d": ("argmax pooling",),
    "XNNAvgPooling2d": ("average pooling",),
    "XNNGlobalAvgPooling2d": ("global average pooling", "mean"),
    "XNNStaticReshape": ("static reshape", "copy"),
    "XNNStaticTranspose": ("transpose",),
    "XNNStaticConstantPad": ("constant pad",),
    "XNNStaticSlice": ("slice",),
    "XNNConcatenate2": ("copy", "concatenate"),
    "XNNConcatenate3": ("copy", "concatenate"),
    "XNNConcatenate4": ("copy", "concatenate"),
    "XNNConcatenate5": ("copy", "concatenate"),
    "XNNBatchMatrixMultiply": ("batch matrix multiply",),
    "XNNDiv": ("divide",),
    "XNNSub": ("subtract",),
    "XNNMultiply": ("multiply", "square"),
    "XNNLeakyReLU": ("leaky relu",),
    "XNNELU": ("elu",),
}


ORPHAN_SOURCES: dict[str, tuple[str, ...]] = {
    "XNNDepthwiseConv2d": ("batch_norm",),
}
"""XNode kinds that XNNPACK's lowering makes out of another op without keeping its debug handle (a BatchNorm
that could not be folded runs as a depthwise convolution), and the source ops they may come from."""


@dataclass(frozen=True)
class XNode:
    """One node of a serialized XNNPACK graph."""

    kind: str
    debug_handle: Optional[int]


@dataclass(frozen=True)
class Attribution:
    """Which XNode an operator event ran, if any could be found."""

    event_index: int
    node_index: Optional[int]
    debug_handle: Optional[int]
    matched: bool
    own: bool = False
    """True when the event is the node's own operator and the node has its own debug handle;
    False for layout copies and extra operators that only inherit a layer."""


def parse_graph(blob: bytes) -> list[XNode]:
    """The XNodes of an XNNPACK delegate blob, in serialization order.

    Raises:
        ValueError: the blob is not an XNNPACK graph.
    """
    graph = _flatbuffer_to_json(graph_flatbuffer(blob))
    nodes = []
    for xnode in graph.get("xnodes", []):
        handle = xnode.get("debug_handle")
        nodes.append(XNode(xnode["xnode_union_type"], None if handle in (None, DEFAULT_DEBUG_HANDLE) else handle))
    return nodes


def graph_flatbuffer(blob: bytes) -> bytes:
    """The XNNGraph flatbuffer of an XNNPACK delegate blob, where its header says it is.

    Raises:
        ValueError: the blob does not start with an XNNPACK header.
    """
    if len(blob) < HEADER_LENGTH or blob[4:8] != HEADER_MAGIC or \
            struct.unpack_from("<H", blob, 8)[0] != HEADER_LENGTH:
        raise ValueError(f"not an XNNPACK graph: no {HEADER_MAGIC.decode()} header of {HEADER_LENGTH} bytes")
    offset, size = struct.unpack_from("<II", blob, 10)
    return blob[offset: offset + size]


def _executorch_file(relative: str) -> Path:
    """A file of the installed executorch package, found without importing any of it.

    Raises:
        ValueError: executorch is not installed or has no such file.
    """
    spec = importlib.util.find_spec("executorch")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / relative).is_file():
            return Path(folder) / relative
    raise ValueError(f"the installed executorch has no {relative}")


@functools.lru_cache(maxsize=64)
def _cached_json(digest: str, flatbuffer: bytes) -> str:
    flatc_path = _executorch_file("data/bin/flatc")
    schema_path = _executorch_file("backends/xnnpack/serialization/schema.fbs")
    with tempfile.TemporaryDirectory() as folder:
        binary = Path(folder) / "graph.bin"
        binary.write_bytes(flatbuffer)
        command = [str(flatc_path), "--json", "--strict-json", "--raw-binary", "-o", folder,
                   str(schema_path), "--", str(binary)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise ValueError(f"flatc could not read the XNNPACK graph: {done.stderr.strip()}")
        return (Path(folder) / "graph.json").read_text()


def _flatbuffer_to_json(flatbuffer: bytes) -> dict:
    text = _cached_json(hashlib.sha256(flatbuffer).hexdigest(), flatbuffer)
    # flatc writes non-finite floats as bare inf/nan, which JSON does not allow.
    text = re.sub(r"(:\s*)(-?)(inf|nan)\b", lambda m: m.group(1) + ("-Infinity" if m.group(2) else
                  ("NaN" if m.group(3) == "nan" else "Infinity")), text)
    return json.loads(text)


def compatible(event_name: str, kind: str) -> bool:
    """Whether an XNNPACK operator event can be the runtime form of an XNode of ``kind``."""
    key = normalize(event_name)
    names = OPERATOR_NAMES.get(kind)
    if names is not None:
        return key in names
    words = " ".join(re.findall(r"[A-Z][a-z]*|\d+", kind.removeprefix("XNN"))).lower()
    words = re.sub(r"\s*\d+d?$", "", words)
    return bool(words) and (key == words or key.startswith(words) or words.startswith(key))


MATCH, SKIP_EVENT, SKIP_NODE = 2, -1, 0


def align(event_names: Sequence[str], nodes: Sequence[XNode], spare: Optional[dict[int, str]] = None
          ) -> list[Attribution]:
    """Attribute each operator event of one delegate call to an XNode.

    A global alignment (events and nodes both in execution order) that may skip nodes
    (fused away) and events (extra operators a node expanded into). An event left unmatched
    takes the node of the matched event before it when it is of a compatible kind (a
    concatenation's second copy), else of the one after it (a layout transpose belongs to
    the op that needs it). Nodes without a debug handle (layout transposes XNNPACK's
    lowering inserted) pass on the handle of the next node that has one, except a node the lowering made
    out of a source op (``ORPHAN_SOURCES``): it takes that op's handle from ``spare`` (the handles of the
    delegate's source ops that no node claims, with their op names), between its neighbours' handles.
    """
    nodes = _adopt_orphans(nodes, spare or {})
    pairs = _best_alignment(event_names, nodes)
    node_of = dict(pairs)
    handles = _effective_handles(nodes)
    result = []
    for index, name in enumerate(event_names):
        node = node_of.get(index)
        matched = node is not None
        if node is None:
            node = _neighbour_node(index, name, node_of, nodes, len(event_names))
        handle = handles[node] if node is not None else None
        own = node is not None and matched and nodes[node].debug_handle is not None
        result.append(Attribution(index, node, handle, matched, own))
    return result


def _adopt_orphans(nodes: Sequence[XNode], spare: dict[int, str]) -> list[XNode]:
    """``nodes`` with each orphan (``ORPHAN_SOURCES``) given the first spare handle of a source op it may come
    from, after the last handle before it and before the next one."""
    adopted, taken = list(nodes), set()
    for index, node in enumerate(nodes):
        sources = ORPHAN_SOURCES.get(node.kind)
        if node.debug_handle is not None or not sources:
            continue
        low = next((n.debug_handle for n in reversed(adopted[:index]) if n.debug_handle is not None), -1)
        high = next((n.debug_handle for n in nodes[index + 1:] if n.debug_handle is not None), None)
        found = next((handle for handle, op in sorted(spare.items()) if low < handle
                      and (high is None or handle < high) and handle not in taken
                      and any(source in op for source in sources)), None)
        if found is not None:
            taken.add(found)
            adopted[index] = XNode(node.kind, found)
    return adopted


def _best_alignment(events: Sequence[str], nodes: Sequence[XNode]) -> list[tuple[int, int]]:
    m, n = len(events), len(nodes)
    score = [[0] * (n + 1) for _ in range(m + 1)]
    for i in range(1, m + 1):
        score[i][0] = score[i - 1][0] + SKIP_EVENT
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            best = max(score[i - 1][j] + SKIP_EVENT, score[i][j - 1] + SKIP_NODE)
            if compatible(events[i - 1], nodes[j - 1].kind):
                best = max(best, score[i - 1][j - 1] + MATCH)
            score[i][j] = best
    pairs, i, j = [], m, n
    while i > 0 and j > 0:
        if compatible(events[i - 1], nodes[j - 1].kind) and score[i][j] == score[i - 1][j - 1] + MATCH:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif score[i][j] == score[i][j - 1] + SKIP_NODE:
            j -= 1
        else:
            i -= 1
    return pairs[::-1]


def _effective_handles(nodes: Sequence[XNode]) -> list[Optional[int]]:
    handles: list[Optional[int]] = [None] * len(nodes)
    following: Optional[int] = None
    for index in range(len(nodes) - 1, -1, -1):
        if nodes[index].debug_handle is not None:
            following = nodes[index].debug_handle
        handles[index] = nodes[index].debug_handle if nodes[index].debug_handle is not None else following
    if following is None:
        return handles
    previous = None
    for index, handle in enumerate(handles):
        handles[index] = handle if handle is not None else previous
        previous = handles[index]
    return handles


def _neighbour_node(index: int, name: str, node_of: dict[int, int], nodes: Sequence[XNode],
                    count: int) -> Optional[int]:
    before = next((node_of[i] for i in range(index - 1, -1, -1) if i in node_of), None)
    after = next((node_of[i] for i in range(index + 1, count) if i in node_of), None)
    if before is not None and compatible(name, nodes[before].kind):
        return before
    return after if after is not None else before
