"""The offline alignment of XNNPACK operator events with the serialized XNNPACK graph."""

from rebirth.models import pte
from rebirth.profiler import xnnpack
from rebirth.profiler.xnnpack import XNode, align


def nodes(*spec):
    return [XNode(kind, handle) for kind, handle in spec]


def test_one_to_one_with_a_layout_transpose_before_its_consumer():
    graph = nodes(("XNNStaticTranspose", None), ("XNNConv2d", 1), ("XNNMaxPooling2d", 4))
    events = ["Transpose (ND, X32) #1", "Convolution (NHWC, F32) IGEMM #1", "Max Pooling (NHWC, F32) #1"]
    result = align(events, graph)
    assert [a.debug_handle for a in result] == [1, 1, 4]
    assert all(a.matched for a in result)
    assert [a.own for a in result] == [False, True, True]  # the transpose only inherits conv's layer


def test_fused_nodes_are_skipped_and_extra_operators_inherit():
    # the clamp was fused into the conv; the concatenation ran as two copies
    graph = nodes(("XNNConv2d", 1), ("XNNClamp", 2), ("XNNConv2d", 3), ("XNNConcatenate2", 5), ("XNNAdd", 6))
    events = ["Convolution (NHWC, F32) IGEMM #1", "Fully Connected (NC, F32) GEMM #1",
              "Copy (NC, X32) #1", "Copy (NC, X32) #2", "Add (ND) #1"]
    result = align(events, graph)
    assert [a.debug_handle for a in result] == [1, 3, 5, 5, 6]
    matched = [a.matched for a in result]
    assert matched[:2] == [True, True] and matched[4] and matched[2] != matched[3]


def test_a_batch_norm_run_as_a_depthwise_convolution_takes_its_own_handle_not_the_next_layers():
    # conv (1) -> relu (2, fused into the conv) -> batch norm (3, no debug handle once lowered) -> conv (4)
    graph = nodes(("XNNStaticTranspose", None), ("XNNConv2d", 1), ("XNNDepthwiseConv2d", None), ("XNNConv2d", 4))
    events = ["Transpose (ND, X32) #1", "Convolution (NHWC, F32) IGEMM #1", "Convolution (NHWC, F32) DWConv #1",
              "Fully Connected (NC, F32) GEMM #1"]
    spare = {2: "aten.relu", 3: "aten._native_batch_norm_legit_no_training"}
    result = align(events, graph, spare)
    assert [a.debug_handle for a in result] == [1, 1, 3, 4] and result[2].own
    assert [a.debug_handle for a in align(events, graph)] == [1, 1, 4, 4]  # without the source map's spare ops


def test_an_unknown_node_kind_matches_by_its_name():
    assert xnnpack.compatible("Square Root (NC) #1", "XNNSquareRoot")
    assert xnnpack.compatible("Hardswish (NC, F32) #1", "XNNHardswish")
    assert not xnnpack.compatible("Max Pooling (NHWC, F32) #1", "XNNConv2d")


def test_the_graph_in_a_real_pte_carries_debug_handles(firenet_ptes):
    program = pte.load_program(firenet_ptes["xnnpack"])
    blobs = pte.delegate_blobs(program)
    assert [b.backend for b in blobs] == ["XnnpackBackend"]
    graph = xnnpack.parse_graph(blobs[0].data)
    kinds = [n.kind for n in graph]
    assert kinds.count("XNNConv2d") == 10  # stem + 3 fire modules x 3 convolutions
    assert "XNNMaxPooling2d" in kinds and "XNNFullyConnected" in kinds
    assert sum(n.debug_handle is not None for n in graph) >= len(graph) - 3
