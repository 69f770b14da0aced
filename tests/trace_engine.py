"""Two readers of a Chrome trace for the tests: Chrome DevTools' trace engine (the Performance panel's model,
published on npm as ``@paulirish/trace_engine``), a real consumer that runs offline once installed; and a strict
check against the trace-event format's specification (Google's "Trace Event Format" document) for what that
engine does not read (counter events, metadata, the nesting rule).

The engine is installed with npm when the tests first need it (cached, like STF's API description in
tests/stf.py), never copied into this repository; a missing npm or registry fails the tests, it does not skip
them. Perfetto's own trace processor (the ``perfetto`` package on PyPI) downloads its binary at run time from a
host this machine cannot reach, so it is not used.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

ENGINE = "@paulirish/trace_engine"
ENGINE_VERSION = "0.0.65"
TREE_SCRIPT = Path(__file__).parent / "js" / "trace_tree.mjs"


def trace_engine(cache: Optional[Path] = None) -> Path:
    """The folder of the installed trace engine (installed once, then cached).

    Raises:
        RuntimeError: npm is missing or the registry cannot be reached (the message says which).
    """
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rebirth-tests"
    prefix = cache / f"trace_engine-{ENGINE_VERSION}"
    folder = prefix / "node_modules" / ENGINE
    if not (folder / "analyze-trace.mjs").is_file():
        prefix.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
                                   f"{ENGINE}@{ENGINE_VERSION}"], capture_output=True, text=True, timeout=300)
        except FileNotFoundError:
            raise RuntimeError("the trace tests need npm to install Chrome DevTools' trace engine: "
                               "scripts/setup-host installs it where it is missing (a Node.js that ships its own "
                               "npm keeps it)") from None
        if done.returncode != 0:
            raise RuntimeError(f"npm install {ENGINE}@{ENGINE_VERSION} failed: {done.stderr.strip()[-300:]}")
    return folder


def devtools_tree(trace: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The slices DevTools' trace engine read from ``trace``: ``{pid: {tid: [root, ...]}}``, each node
    ``{"name", "ts", "dur", "children"}``."""
    done = subprocess.run(["node", str(TREE_SCRIPT), str(trace_engine()), str(trace)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


METADATA = {"process_name": "name", "thread_name": "name", "process_sort_index": "sort_index",
            "thread_sort_index": "sort_index", "process_labels": "labels"}


def check_trace_format(text: str) -> dict[str, Any]:
    """Parse ``text`` and hold it to the trace-event format; returns the parsed object.

    The JSON Object Format: ``traceEvents`` a list, ``displayTimeUnit`` "ms" or "ns". Complete events (X):
    name, cat, ts and dur (numbers, µs, dur >= 0), integer pid and tid. Counter events (C): name, ts, pid and
    ``args`` of numbers. Metadata events (M): one of the names the format defines, with its argument. And
    the rule the viewers need for complete events on one thread: they nest, a slice that starts inside another
    ends inside it too.
    """
    document = json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    assert isinstance(document, dict) and isinstance(document["traceEvents"], list)
    assert document.get("displayTimeUnit", "ms") in ("ms", "ns")
    slices: dict[tuple[int, int], list[tuple[float, float, str]]] = defaultdict(list)
    for event in document["traceEvents"]:
        _check_event(event, slices)
    for thread, spans in slices.items():
        _check_nesting(thread, spans)
    return document


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_event(event: dict[str, Any], slices: dict[tuple[int, int], list[tuple[float, float, str]]]) -> None:
    phase = event["ph"]
    assert isinstance(event["name"], str) and event["name"], event
    assert isinstance(event["pid"], int), event
    if phase == "X":
        assert isinstance(event["cat"], str) and isinstance(event["tid"], int), event
        assert _number(event["ts"]) and _number(event["dur"]) and event["dur"] >= 0, event
        assert set(event) <= {"ph", "name", "cat", "ts", "dur", "pid", "tid", "args"}, event
        slices[(event["pid"], event["tid"])].append((event["ts"], event["ts"] + event["dur"], event["name"]))
    elif phase == "C":
        assert _number(event["ts"]) and event["args"] and all(_number(v) for v in event["args"].values()), event
    elif phase == "M":
        assert event["name"] in METADATA and METADATA[event["name"]] in event["args"], event
    else:
        raise AssertionError(f"an event of phase {phase!r}, which rebirth does not write: {event}")


def _check_nesting(thread: tuple[int, int], spans: list[tuple[float, float, str]]) -> None:
    open_spans: list[tuple[float, float, str]] = []
    for start, end, name in sorted(spans, key=lambda span: (span[0], -span[1])):
        while open_spans and open_spans[-1][1] <= start and not (open_spans[-1][1] == start == end):
            open_spans.pop()
        if open_spans:
            parent = open_spans[-1]
            assert end <= parent[1] + 1e-9, f"{thread}: {name} [{start}, {end}] overlaps {parent}"
        open_spans.append((start, end, name))
