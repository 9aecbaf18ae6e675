"""ONNX export round trip against PyTorch, within the tolerance stated in sllen.export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from sllen import export as E
from sllen.deploy import INPUT_NAME, OUTPUT_NAMES
from sllen.model import build
from sllen.serving import open_session

from .conftest import TINY_CONFIGS


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_onnx_round_trip(name: str) -> None:
    net = build(TINY_CONFIGS[name]).eval()
    data = E.export_bytes(net)
    results = E.check(net, data)  # raises ExportCheckError beyond tolerance
    assert all(r.ok() for r in results)


def test_onnx_graph_contract() -> None:
    model = onnx.load_from_string(E.export_bytes(build(TINY_CONFIGS["tiny"]).eval()))
    assert model.opset_import[0].version == E.OPSET
    (inp,) = model.graph.input
    assert inp.name == INPUT_NAME
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["N", "H", "W", 3]
    outs = {o.name: o for o in model.graph.output}
    assert set(outs) == set(OUTPUT_NAMES)
    for name in OUTPUT_NAMES:
        assert outs[name].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Loop", "If", "Scan", "SequenceConstruct"}


def test_session_accepts_extreme_sizes() -> None:
    session = open_session(E.export_bytes(build(TINY_CONFIGS["tiny"]).eval()), 2)
    for h, w in [(32, 32), (32, 1001), (129, 35)]:
        image = np.zeros((1, h, w, 3), np.uint8)
        enhanced, mask = session.run(list(OUTPUT_NAMES), {INPUT_NAME: image})
        assert enhanced.shape == (1, h, w, 3) and mask.shape == (1, h, w)


def test_export_writes_only_after_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = build(TINY_CONFIGS["tiny"]).eval()
    out = tmp_path / "repo" / "sllen" / "1" / "model.onnx"
    E.export_to(net, out)
    assert out.exists() and not list(out.parent.glob("*.tmp"))
    pruned = E.enhanced_only_path(out)
    assert pruned.name == "model_enhanced.onnx"
    session = open_session(pruned.read_bytes(), 2)
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAMES[0]]

    def fail(*_: object) -> list[E.Agreement]:
        raise E.ExportCheckError("forced")

    out2 = tmp_path / "other.onnx"
    monkeypatch.setattr(E, "check", fail)
    with pytest.raises(E.ExportCheckError):
        E.export_to(net, out2)
    assert not out2.exists()


def test_agreement_thresholds() -> None:
    assert E.Agreement(1.0, 0, 1.0).ok()
    assert not E.Agreement(0.99, 1, 1.0).ok()
    assert not E.Agreement(1.0, 9, 1.0).ok()
    assert not E.Agreement(1.0, 0, 0.99).ok()


def test_a_pruned_graph_that_disagrees_is_refused() -> None:
    a = E.export_bytes(build(TINY_CONFIGS["tiny"]).eval())
    torch.manual_seed(1)
    b = E.enhanced_only(E.export_bytes(build(TINY_CONFIGS["tiny"]).eval()))  # other weights
    E.check_enhanced_only(a, E.enhanced_only(a))
    with pytest.raises(E.ExportCheckError, match="enhanced-only"):
        E.check_enhanced_only(a, b)
