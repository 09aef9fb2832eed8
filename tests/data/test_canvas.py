"""Canvas geometry: similarity fit, framing resample against a direct warp of the photo."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from bench.data.canvas import ARCFACE_112, CANVAS_TEMPLATE, FACE_BOX, Framing, similarity_fit
from bench.data.decoding import read_rgb


def test_similarity_fit_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    m = similarity_fit(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-9) and np.allclose(m[:, 2], shift, atol=1e-9)


def test_canvas_template_puts_arcface_crop_on_the_face_box():
    assert FACE_BOX == (42, 182)
    assert np.allclose(CANVAS_TEMPLATE, ARCFACE_112 * 1.25 + 42)


def test_framing_crop_matches_a_direct_warp_of_the_photo(shared_data, aligner):
    """Taking the 112 ArcFace crop from the canvas ~ warping the photo straight onto the 112 template."""
    path = shared_data / "wild" / "person_b_1.jpg"
    face = aligner.align(path)
    canvas = torch.from_numpy(face.canvas).permute(2, 0, 1)[None].float() / 255
    crop = Framing.arcface(112).crop(canvas)[0].permute(1, 2, 0).numpy() * 255
    direct = cv2.warpAffine(read_rgb(path), similarity_fit(face.landmarks, ARCFACE_112), (112, 112),
                            flags=cv2.INTER_LINEAR).astype(np.float32)
    inner = (slice(4, -4), slice(4, -4))  # borders differ by padding rules only
    assert np.abs(crop[inner] - direct[inner]).mean() < 4.0  # two resamples vs one, 0..255 scale


def test_crop_is_differentiable_and_shrinks_with_antialias():
    canvases = torch.rand(2, 3, 224, 224, requires_grad=True)
    small = Framing.arcface(56).crop(canvases)
    assert small.shape == (2, 3, 56, 56)
    small.sum().backward()
    assert canvases.grad is not None and float(canvases.grad.abs().sum()) > 0


def _uncached_crop(framing: Framing, canvases: torch.Tensor) -> torch.Tensor:
    """The resample built from scratch on every call, as Framing.crop did before it kept its plan."""
    import torch.nn.functional as F

    n, c, s, _ = canvases.shape
    shrink = framing.pixels_per_canvas_pixel() * 224 / s
    if shrink < 0.8:
        canvases = F.interpolate(canvases, size=max(1, round(s * shrink)), mode="bilinear", antialias=True,
                                 align_corners=False)
    theta = framing.theta(224).to(canvases.device, canvases.dtype).expand(n, 2, 3)
    grid = F.affine_grid(theta, [n, c, framing.size, framing.size], align_corners=False)
    return F.grid_sample(canvases, grid, mode="bilinear", padding_mode="border", align_corners=False)


def test_cached_resample_plan_gives_the_uncached_crop_on_real_faces(lfw_faces):
    """The grid kept per framing, canvas size, device and dtype changes no pixel: any batch size, a pre-shrunk
    framing, a larger canvas, float64; and a grid first built in inference mode still carries gradients."""
    from bench.data.canvas import _resample_plan

    faces = torch.cat([lfw_faces["Colin_Powell"][:3], lfw_faces["Tony_Blair"][:2]])
    dlib_chip = Framing(150, ((47.92, 45.87), (102.00, 46.11), (75.29, 78.85), (50.83, 105.79), (98.45, 106.08)))
    _resample_plan.cache_clear()
    for framing in (Framing.arcface(112), Framing.arcface(56), dlib_chip):
        for batch in (faces, faces[:2], faces[:1]):
            with torch.inference_mode():
                assert torch.equal(framing.crop(batch), _uncached_crop(framing, batch))
        big = torch.nn.functional.interpolate(faces[:2], size=448, mode="bilinear", align_corners=False)
        assert torch.equal(framing.crop(big), _uncached_crop(framing, big))
        assert torch.equal(framing.crop(faces.double()), _uncached_crop(framing, faces.double()))
        assert framing.crop(faces.double()).dtype == torch.float64
        x, ref = faces.clone().requires_grad_(True), faces.clone().requires_grad_(True)
        framing.crop(x).square().sum().backward()
        _uncached_crop(framing, ref).square().sum().backward()
        assert torch.equal(x.grad, ref.grad)
    # one plan per framing x canvas size x dtype, shared by every batch size
    assert _resample_plan.cache_info().currsize == 3 * 3
