"""Which op is a tensor layer and which is not, for aten and XNNPACK op names alike.

DeepRebirth calls convolution and fully connected (matrix multiply) layers "tensor" layers
and everything else (pooling, normalization, activations, concat, copies, element-wise
math) "non-tensor". The rules are data: an ordered table of (pattern, op type, category) in
``taxonomy.toml``, matched against a normalized op name; ``register`` lets users add their own first.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Optional

from rebirth.contract.profile import FRAMEWORK, NON_TENSOR

__all__ = ["RULES", "Rule", "classify", "normalize", "register"]


@dataclass(frozen=True)
class Rule:
    """Ops whose normalized name matches ``pattern`` (a full-match regex) get this type."""

    pattern: str
    op_type: str
    category: str


def _builtin_rules() -> list[Rule]:
    """The table shipped beside this module (``taxonomy.toml``), in its order."""
    with resources.files(__package__).joinpath("taxonomy.toml").open("rb") as stream:
        return [Rule(**rule) for rule in tomllib.load(stream)["rule"]]


RULES: list[Rule] = _builtin_rules()

_XNNPACK_NAME = re.compile(r"^(?P<base>[A-Za-z][A-Za-z ]*?)\s*\((?P<layout>[^)]*)\)(?P<rest>.*)$")


def register(rule: Rule) -> None:
    """Add a rule that takes precedence over the built-in ones."""
    RULES.insert(0, rule)


def normalize(name: str) -> str:
    """Reduce any op name to the key the rules match.

    ``native_call_convolution.out`` and ``aten.convolution.default`` become ``convolution``;
    ``Convolution (NHWC, F32) IGEMM #3`` becomes ``convolution`` and
    ``Convolution (NHWC, F32) DWConv #1`` becomes ``convolution dwconv``.
    """
    name = name.strip()
    if name.startswith("native_call_"):
        name = name[len("native_call_"):]
    if name.startswith(("aten.", "aten::")):
        name = name.split(".", 1)[1] if name.startswith("aten.") else name.split("::", 1)[1]
    if name.startswith("dim_order_ops."):
        name = name.split(".", 1)[1]
    match = _XNNPACK_NAME.match(name)
    if match:
        dwconv = " dwconv" if "DWConv" in match.group("rest") else ""
        return match.group("base").strip().lower() + dwconv
    return name.split(".")[0].split(" #")[0].lower()


def classify(name: str, source_op: Optional[str] = None) -> tuple[str, str]:
    """Op type and category of an op event.

    Args:
        name: the event name as the runtime recorded it.
        source_op: the aten op it came from, when known (attributed XNNPACK ops). It wins
            over the event name except for framework events: a BatchNorm that XNNPACK runs as
            a depthwise convolution is still a BatchNorm layer.

    Returns:
        ``(op_type, category)``; unknown ops are non-tensor, as in the paper.
    """
    key = normalize(name)
    rule = _match(key)
    if rule and rule.category == FRAMEWORK:
        return rule.op_type, rule.category
    if source_op:
        source_rule = _match(normalize(source_op))
        if source_rule:
            if source_rule.op_type == "conv" and rule and rule.op_type == "depthwise_conv":
                return rule.op_type, rule.category
            return source_rule.op_type, source_rule.category
    if rule:
        return rule.op_type, rule.category
    return key.replace(" ", "_") or "unknown", NON_TENSOR


def _match(key: str) -> Optional[Rule]:
    for rule in RULES:
        if re.fullmatch(rule.pattern, key):
            return rule
    return None
