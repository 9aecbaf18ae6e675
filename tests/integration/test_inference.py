"""The worker's Triton client against the real Triton: outputs asked for, and only those."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from service.config import Settings
from service.inference import TritonModel
from testkit.images import dark_scene

pytestmark = pytest.mark.integration


async def test_a_request_without_mask_gets_the_same_image_and_no_mask(triton_url: str) -> None:
    model = TritonModel(Settings(triton_grpc_url=triton_url))
    try:
        images = np.stack([dark_scene(64, 96, seed=s) for s in (1, 2)])
        full = await model.infer(images, mask=True)
        bare = await model.infer(images, mask=False)
    finally:
        await model.close()
    assert full.mask is not None and full.mask.shape == (2, 64, 96)
    assert int(full.mask.max()) <= 11  # 11: "unknown", below the confidence threshold
    assert bare.mask is None
    # model_enhanced.onnx is the same graph pruned to "enhanced": byte-identical output.
    assert np.array_equal(full.enhanced, bare.enhanced)


async def test_mixed_requests_in_one_triton_batch_each_get_what_they_asked(
    triton_url: str,
) -> None:
    model = TritonModel(Settings(triton_grpc_url=triton_url))
    image = dark_scene(48, 64, seed=3)[None]
    try:
        # Same shape, sent together: Triton's dynamic batcher may put them in one execute().
        results = await asyncio.gather(*(model.infer(image, mask=bool(i % 2)) for i in range(6)))
    finally:
        await model.close()
    for i, result in enumerate(results):
        assert np.array_equal(result.enhanced, results[0].enhanced)
        assert (result.mask is not None) == bool(i % 2)


async def test_a_request_naming_no_outputs_gets_both(triton_url: str) -> None:
    """Triton's rule: no outputs named means all outputs, so the mask must come too."""
    import tritonclient.grpc.aio as triton

    client = triton.InferenceServerClient(url=triton_url)
    image = dark_scene(40, 56, seed=4)[None]
    image_in = triton.InferInput("image", list(image.shape), "UINT8")
    image_in.set_data_from_numpy(image)
    try:
        response = await client.infer("sllen", [image_in])
    finally:
        await client.close()
    mask = response.as_numpy("mask")
    assert response.as_numpy("enhanced") is not None and mask is not None
    assert mask.shape == (1, 40, 56)


async def test_images_shared_out_over_the_cores_match_each_image_run_alone(
    triton_url: str,
) -> None:
    """Several images in one execute() run on one core each (model.py's lanes); one image runs
    on every core. Both must give the same bytes, masks included, whatever the sizes."""
    model = TritonModel(Settings(triton_grpc_url=triton_url))
    batch = np.stack([dark_scene(56, 72, seed=s) for s in (5, 6, 7)])
    sizes = [(40, 64), (72, 48), (40, 64), (96, 80), (33, 57)]
    singles = [dark_scene(h, w, seed=10 + i)[None] for i, (h, w) in enumerate(sizes)]
    try:
        alone = [await model.infer(batch[k : k + 1], mask=True) for k in range(len(batch))]
        alone_singles = [
            await model.infer(image, mask=bool(i % 2)) for i, image in enumerate(singles)
        ]
        together = await model.infer(batch, mask=True)
        # Different sizes at once: the input allows ragged batches, so Triton may merge them.
        mixed = await asyncio.gather(
            *(model.infer(image, mask=bool(i % 2)) for i, image in enumerate(singles))
        )
    finally:
        await model.close()
    assert together.mask is not None
    for k, one in enumerate(alone):
        assert np.array_equal(together.enhanced[k], one.enhanced[0])
        assert one.mask is not None and np.array_equal(together.mask[k], one.mask[0])
    for i, (got, want) in enumerate(zip(mixed, alone_singles, strict=True)):
        assert got.enhanced.shape == singles[i].shape
        assert np.array_equal(got.enhanced, want.enhanced)
        assert (got.mask is not None) == bool(i % 2)
        if got.mask is not None:
            assert want.mask is not None and np.array_equal(got.mask, want.mask)
