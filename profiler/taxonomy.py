"""Which op is a tensor layer and which is not, for aten and XNNPACK op names alike.

DeepRebirth calls convolution and fully connected (matrix multiply) layers "tensor" layers
and everything else (pooling, normalization, activations, concat, copies, element-wise
math) "non-tensor". The rules are data: an ordered table of (pattern, op type, category)
matched against a normalized op name; ``register`` lets users add their own first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from rebirth.contract.profile import FRAMEWORK, NON_TENSOR, TENSOR

__all__ = ["RULES", "Rule", "classify", "normalize", "register"]


@dataclass(frozen=True)
class Rule:
    """Ops whose normalized name matches ``pattern`` (a full-match regex) get this type."""

    pattern: str
    op_type: str
    category: str


RULES: list[Rule] = [
    # framework events recorded by the ExecuTorch runtime itself
    Rule(r"method::.*|program::.*|delegate_call|operator_call|delegate overhead", "framework", FRAMEWORK),
    # tensor layers
    Rule(r"convolution .*dwconv|depthwise.*", "depthwise_conv", TENSOR),
    Rule(r"_?convolution|conv\d?d|convolution.*|deconvolution.*", "conv", TENSOR),
    Rule(r"fully connected|linear|addmm", "linear", TENSOR),
    Rule(r"mm|bmm|baddbmm|matmul|batch matrix multiply.*", "matmul", TENSOR),
    # pooling
    Rule(r"max_pool\dd(_with_indices)?|max pooling|argmax pooling", "max_pool", NON_TENSOR),
    Rule(r"global average pooling|global sum pooling|adaptive_avg_pool2d|mean(\.dim)?|mean", "global_avg_pool",
         NON_TENSOR),
    Rule(r"avg_pool\dd|average pooling", "avg_pool", NON_TENSOR),
    # normalization
    Rule(r"(_native_)?batch_norm.*", "batch_norm", NON_TENSOR),
    Rule(r"(native_)?layer_norm|layer normalization", "layer_norm", NON_TENSOR),
    Rule(r"local_response_norm|lrn", "lrn", NON_TENSOR),
    # activations
    Rule(r"relu|clamp|clamp_min|hardtanh|relu6|leaky relu|leaky_relu", "relu", NON_TENSOR),
    Rule(r"sigmoid|tanh|gelu|silu|hardswish|hardsigmoid|elu|swish|exp|log", "activation", NON_TENSOR),
    Rule(r"_?(log_)?softmax", "softmax", NON_TENSOR),
    # concatenation and copies
    Rule(r"cat|concatenate\d?|concat", "concat", NON_TENSOR),
    Rule(r"permute(_copy)?|transpose(_copy)?|t_copy", "transpose", NON_TENSOR),
    Rule(r"view(_copy)?|reshape|static reshape|squeeze(_copy)?|unsqueeze(_copy)?|flatten|_unsafe_view",
         "reshape", NON_TENSOR),
    Rule(r"copy|clone|_to_copy|_to_dim_order_copy|expand(_copy)?|convert", "copy", NON_TENSOR),
    Rule(r"constant_pad_nd|constant pad|pad", "pad", NON_TENSOR),
    Rule(r"slice(_copy)?|split(_copy|_with_sizes_copy)?|select(_copy)?|split_with_sizes", "slice", NON_TENSOR),
    # element-wise math
    Rule(r"add|sub|subtract|rsub", "add", NON_TENSOR),
    Rule(r"mul|multiply", "mul", NON_TENSOR),
    Rule(r"div|divide", "div", NON_TENSOR),
    Rule(r"pow|square|sqrt|rsqrt|square root|reciprocal square root", "pow", NON_TENSOR),
    Rule(r"dropout|native_dropout|alias|detach", "dropout", NON_TENSOR),
]

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
