"""The TensorRT model agrees with the CPU model and with the ONNX graph it is built from.

The ONNX is read from model_repository/sllen/1/model.onnx when it is there; otherwise a tiny graph
with the same I/O contract stands in, so the checks on the configs still run.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sllen.serving import open_session
from tests.deploy.conftest import MODEL_REPO, ONNX_PATH

onnx = pytest.importorskip("onnx")

BUILD_SCRIPT = MODEL_REPO / "sllen_trt" / "build_engine.sh"
MIN_SIDE, MAX_SIDE = 32, 4096  # the documented size range (sllen/deploy.py, README)

# ONNX ops the TensorRT 10 ONNX parser supports without plugins that an image-to-image CNN of
# this kind may use (onnx-tensorrt docs/operators.md). Anything else must be looked up first.
TRT_OPS = {
    "Abs",
    "Add",
    "ArgMax",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Ceil",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "DepthToSpace",
    "Div",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Greater",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "LayerNormalization",
    "LeakyRelu",
    "Less",
    "Log",
    "MatMul",
    "Max",
    "MaxPool",
    "Min",
    "Mish",
    "Mul",
    "Neg",
    "Pad",
    "Pow",
    "PRelu",
    "Range",
    "Reciprocal",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Resize",
    "Round",
    "Selu",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Softplus",
    "SpaceToDepth",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "Tile",
    "Transpose",
    "Unsqueeze",
    "Where",
}
TRT_OPSET = range(9, 21)  # TensorRT 10.x parses opsets 9..20
PAD_MODES = {b"constant", b"reflect", b"edge"}
RESIZE_MODES = {b"nearest", b"linear"}
U8 = 2  # onnx.TensorProto.UINT8
FLOATS = {1, 10}  # FLOAT, FLOAT16


def tiny_onnx() -> Any:
    """Same names, dtypes and dynamic dims as the real export: uint8 NHWC in, uint8 out."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Pad", ["nchw", "pads"], ["padded"], mode="edge"),
        helper.make_node("Conv", ["padded", "w"], ["y"], kernel_shape=[3, 3]),
        helper.make_node("Clip", ["y", "lo", "hi"], ["yc"]),
        helper.make_node("Round", ["yc"], ["yr"]),
        helper.make_node("Transpose", ["yr"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Cast", ["nhwc"], ["enhanced"], to=TensorProto.UINT8),
        helper.make_node("ArgMax", ["y"], ["cls"], axis=1, keepdims=0),
        helper.make_node("Cast", ["cls"], ["clsf"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["clsf"], ["mask"], to=TensorProto.UINT8),
    ]
    inits = [
        helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 1, 1, 0, 0, 1, 1]),
        helper.make_tensor("w", TensorProto.FLOAT, [3, 3, 3, 3], [1 / 27] * 81),
        helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("hi", TensorProto.FLOAT, [], [255.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_sllen",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", 3])],
        [
            helper.make_tensor_value_info("enhanced", TensorProto.UINT8, ["N", "H", "W", 3]),
            helper.make_tensor_value_info("mask", TensorProto.UINT8, ["N", "H", "W"]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module", params=["committed", "tiny"])
def model(request: pytest.FixtureRequest) -> Any:
    if request.param == "committed":
        if not ONNX_PATH.is_file():
            pytest.skip(f"{ONNX_PATH} not exported yet")
        return onnx.load(str(ONNX_PATH))
    return tiny_onnx()


def dims(value_info: Any) -> list[int | str]:
    return [
        d.dim_param if d.HasField("dim_param") else d.dim_value
        for d in value_info.type.tensor_type.shape.dim
    ]


def parse_profiles(script: Path) -> list[tuple[tuple[int, ...], ...]]:
    """DEFAULT_PROFILES in build_engine.sh: MIN:OPT:MAX per profile, each NxHxW."""
    block = re.search(r'DEFAULT_PROFILES="([^"]*)"', script.read_text())
    assert block, "build_engine.sh has no DEFAULT_PROFILES"
    profiles = []
    for token in block.group(1).split():
        triple = tuple(tuple(int(v) for v in part.split("x")) for part in token.split(":"))
        assert len(triple) == 3 and all(len(s) == 3 for s in triple), token
        profiles.append(triple)
    return profiles


# --- the two Triton configs


def test_trt_config_is_a_tensorrt_plan(trt_config: Any) -> None:
    assert trt_config.name == "sllen_trt"
    assert trt_config.platform == "tensorrt_plan"
    assert trt_config.default_model_filename == "model.plan"
    assert trt_config.HasField("dynamic_batching")
    kinds = [
        type(trt_config.instance_group[0]).Kind.Name(g.kind) for g in trt_config.instance_group
    ]
    assert kinds == ["KIND_GPU"]


def test_trt_and_cpu_configs_share_the_contract(sllen_config: Any, trt_config: Any) -> None:
    def io(config: Any) -> list[tuple[str, int, list[int]]]:
        return [(t.name, t.data_type, list(t.dims)) for t in [*config.input, *config.output]]

    assert io(trt_config) == io(sllen_config)
    assert trt_config.max_batch_size == sllen_config.max_batch_size
    assert [t.name for t in trt_config.input] == ["image"]
    assert [t.name for t in trt_config.output] == ["enhanced", "mask"]


def test_trt_warmup_fits_the_contract(trt_config: Any) -> None:
    for warmup in trt_config.model_warmup:
        assert 1 <= warmup.batch_size <= trt_config.max_batch_size
        image = warmup.inputs["image"]
        assert image.data_type == trt_config.input[0].data_type
        h, w, c = image.dims
        assert MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE and c == 3


# --- optimisation profiles


def test_profiles_cover_sizes_and_batches(trt_config: Any) -> None:
    profiles = parse_profiles(BUILD_SCRIPT)
    names = [p for g in trt_config.instance_group for p in g.profile]
    assert names == [str(i) for i in range(len(profiles))], "config names every engine profile"
    for lo, opt, hi in profiles:
        assert all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)), (lo, opt, hi)
        # Triton needs every profile to hold a full batch; and min 1 serves a lone request.
        assert lo[0] == 1 and hi[0] == trt_config.max_batch_size
    # Every (H, W) in the documented range falls inside some profile, and the union has no gap:
    # profiles sorted by their min side must chain from MIN_SIDE to MAX_SIDE.
    for axis in (1, 2):
        spans = sorted((lo[axis], hi[axis]) for lo, _, hi in profiles)
        reach = MIN_SIDE - 1
        for start, end in spans:
            assert start <= reach + 1, f"gap below {start} on axis {axis}"
            reach = max(reach, end)
        assert spans[0][0] <= MIN_SIDE and reach >= MAX_SIDE
    assert any(
        hi[1] >= MAX_SIDE and hi[2] >= MAX_SIDE and lo[1] <= MIN_SIDE for lo, _, hi in profiles
    )


def test_build_script_checks_profiles_against_config(tmp_path: Path) -> None:
    """build_engine.sh refuses a profile that cannot hold max_batch_size before touching a GPU."""
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"x")
    env = {
        "PATH": "/usr/bin:/bin",
        "SLLEN_TRT_ONNX": str(onnx_file),
        "SLLEN_TRT_PROFILES": "1x32x32:2x64x64:4x4096x4096 1x32x32:1x64x64:8x4096x4096",
    }
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(tmp_path / "out.plan")],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode != 0
    assert "max batch 4 != max_batch_size 8" in proc.stderr


# --- the ONNX graph is one TensorRT can build


def test_onnx_io_is_uint8_with_dynamic_batch_and_size(model: Any, trt_config: Any) -> None:
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    assert [i.name for i in inputs] == [t.name for t in trt_config.input]
    assert [o.name for o in graph.output] == [t.name for t in trt_config.output]
    for value, spec in zip(
        [*inputs, *graph.output], [*trt_config.input, *trt_config.output], strict=True
    ):
        assert value.type.tensor_type.elem_type == U8, value.name
        shape = dims(value)
        # N, H, W are symbolic (dynamic); the rest must equal the config's fixed dims.
        assert all(isinstance(d, str) and d for d in shape[:3]), (value.name, shape)
        assert shape[1:] == [d if d != -1 else shape[i + 1] for i, d in enumerate(spec.dims)], (
            value.name,
            shape,
            list(spec.dims),
        )
    # Outputs keep the input's N, H and W (same symbols), so any size maps to itself.
    assert dims(graph.output[0])[:3] == dims(inputs[0])[:3] == dims(graph.output[1])[:3]


def test_onnx_ops_are_tensorrt_supported(model: Any) -> None:
    opsets = {o.domain: o.version for o in model.opset_import}
    assert set(opsets) <= {"", "ai.onnx"}, f"custom domains need plugins: {opsets}"
    assert opsets.get("", opsets.get("ai.onnx")) in TRT_OPSET
    nodes = list(model.graph.node)
    unsupported = sorted({n.op_type for n in nodes} - TRT_OPS)
    assert not unsupported, f"not in the TensorRT allow-list: {unsupported}"
    initializers = {i.name for i in model.graph.initializer}
    constants = {o for n in nodes if n.op_type == "Constant" for o in n.output}
    for node in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Pad":
            assert attrs.get("mode", b"constant") in PAD_MODES, node.name
        if node.op_type == "Resize":
            assert attrs.get("mode", b"nearest") in RESIZE_MODES, node.name
        if node.op_type in {"Conv", "ConvTranspose"}:
            assert node.input[1] in initializers | constants, (
                f"{node.name}: weights must be constant"
            )


def test_onnx_uint8_only_at_the_boundary(model: Any) -> None:
    """TensorRT's UINT8 is an I/O type only: converted to/from float32 or float16 by a Cast at
    the boundary, and never to/from an integer type (tensorrt.DataType.UINT8). So the input may
    only feed Casts to float, and each output must be a Cast from float; no uint8 inside."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]
    }
    boundary = {v.name for v in [*inferred.graph.input, *inferred.graph.output]}
    inner_u8 = sorted(n for n, t in types.items() if t == U8 and n not in boundary)
    assert not inner_u8, f"uint8 tensors inside the graph: {inner_u8}"
    outputs = {o.name for o in inferred.graph.output}
    for node in inferred.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if "image" in node.input:
            assert node.op_type == "Cast" and attrs["to"] in FLOATS, (
                f"{node.op_type} reads the uint8 input: Cast it to float first"
            )
        for out in set(node.output) & outputs:
            assert node.op_type == "Cast" and types.get(node.input[0]) in FLOATS, (
                f"{out} is written by {node.op_type} from type {types.get(node.input[0])}: "
                "it must be a Cast from float32/float16"
            )


@pytest.mark.parametrize(("n", "h", "w"), [(1, 32, 32), (2, 37, 45)])
def test_onnx_runs_at_dynamic_shapes(model: Any, n: int, h: int, w: int) -> None:
    session = open_session(model.SerializeToString(), 1)
    image = np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    enhanced, mask = session.run(["enhanced", "mask"], {"image": image})
    assert enhanced.shape == (n, h, w, 3) and enhanced.dtype == np.uint8
    assert mask.shape == (n, h, w) and mask.dtype == np.uint8
