"""The harness checks every declared budget (L-inf, DSSIM, L2, area) on every protected photo."""

from __future__ import annotations

import pytest
import torch

from bench.data.canvas import FACE_BOX, face_region
from bench.measures.quality import dssim
from bench.run.budget import SLACK, BudgetExceeded, check_budget


@pytest.fixture(scope="module")
def faces(lfw_faces):
    return lfw_faces["Tony_Blair"][:3]


def noisy(clean: torch.Tensor, amplitude: float, face_box_only: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    noise = amplitude * torch.sign(torch.randn(clean.shape, generator=gen))
    if face_box_only:
        a, b = FACE_BOX
        keep = torch.zeros_like(noise)
        keep[..., a:b, a:b] = 1
        noise = noise * keep
    return (clean + noise).clamp(0, 1)


def test_within_budget_passes_and_reports_the_worst_photo(faces):
    protected = noisy(faces, 2 / 255)
    worst = check_budget("toy", {"linf": 2 / 255, "dssim": 0.5}, protected, faces)
    assert worst["linf"] == pytest.approx(2 / 255, abs=1e-6)
    assert worst["dssim"] == pytest.approx(float(dssim(face_region(protected), face_region(faces)).max()))
    assert check_budget("toy", {}, protected, faces) == {}


def test_linf_over_budget_fails_naming_photo_and_bound(faces):
    with pytest.raises(BudgetExceeded, match=r"toy exceeded its linf budget on photo 0 \(and 2 more\)"):
        check_budget("toy", {"linf": 1 / 255}, noisy(faces, 2 / 255), faces)
    # float slack: a hair over the bound is rounding, not a violation
    check_budget("toy", {"linf": 2 / 255 - SLACK["linf"] / 2}, noisy(faces, 2 / 255), faces)


def test_dssim_is_measured_on_the_face_box(faces):
    protected = noisy(faces, 8 / 255, face_box_only=True)
    measured = dssim(face_region(protected), face_region(faces))
    assert (measured > 0.004).all()
    with pytest.raises(BudgetExceeded, match="dssim budget"):
        check_budget("toy", {"dssim": 0.004}, protected, faces, "probe photo")
    outside = faces.clone()
    outside[..., :20, :20] = 1 - outside[..., :20, :20]  # a change off the face box costs no DSSIM budget
    assert check_budget("toy", {"dssim": 1e-6}, outside, faces)["dssim"] == pytest.approx(0, abs=1e-7)


def test_a_budget_the_harness_cannot_measure_is_an_error(faces):
    with pytest.raises(ValueError, match="cannot check"):
        check_budget("toy", {"l1": 1.0}, faces, faces)


def test_l2_and_area_bounds(faces):
    protected = noisy(faces, 2 / 255)  # every value moves by 2/255 (less where clipped): norm <= 2/255 * sqrt(3 * 224^2)
    norm = float(((protected - faces) ** 2).sum((1, 2, 3)).sqrt().max())
    assert 0.9 * 2 / 255 * (3 * 224 * 224) ** 0.5 < norm <= 2 / 255 * (3 * 224 * 224) ** 0.5
    assert check_budget("toy", {"l2": norm}, protected, faces)["l2"] == pytest.approx(norm, rel=1e-4)
    with pytest.raises(BudgetExceeded, match="l2 budget"):
        check_budget("toy", {"l2": 0.9 * norm}, protected, faces)
    patch = faces.clone()
    patch[..., :56, :] = 0.5  # the top quarter of the canvas
    assert check_budget("toy", {"area": 0.25}, patch, faces)["area"] <= 0.25
    with pytest.raises(BudgetExceeded, match="area budget"):
        check_budget("toy", {"area": 0.2}, patch, faces)
