"""Adversaries on real faces: input transforms, mask estimation, and the training adversaries with a real
method, real targets and the owner's own LFW people."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.registry import ADVERSARIES, ConfigError


def sign_noise(shape, amplitude: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, shape, generator=g).float() * 2 - 1) * amplitude


def published(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


@pytest.mark.parametrize("name, overrides, allowed", [
    ("jpeg-75", {"quality": 0}, "[1, 95]"),
    ("webp-75", {"quality": 101}, "[1, 100]"),
    ("gaussian-blur-1", {"sigma": -1.0}, "(0, 10]"),
    ("median-3", {"size": 4}, "odd"),
    ("bilateral", {"sigma_color": 0}, "(0, 255]"),
    ("nl-means-10", {"h": -2}, "(0, 100]"),
    ("tv-denoise-0.1", {"weight": 0}, "(0, 10]"),
    ("wavelet", {"sigma": -0.1}, "(0, 1]"),
    ("wavelet", {"wavelet": "nope"}, "discrete PyWavelets"),
    ("bit-depth-4", {"bits": 8}, "[1, 7]"),
    ("resize-0.5", {"scale": 0}, "(0.1, 1]"),
    ("resize-pad", {"min_scale": 1.5}, "(0.5, 1]"),
    ("mask-estimation", {"estimator": "magic"}, "mean-highpass"),
    ("purification", {"steps": 0}, "[1,"),
    ("robust-finetune", {"lr": -1e-4}, "(0, 1]"),
])
def test_bad_adversary_config_names_value_and_range(name, overrides, allowed):
    with pytest.raises(ConfigError) as err:
        ADVERSARIES.create(name, **overrides)
    msg = str(err.value)
    assert allowed in msg and repr(next(iter(overrides.values()))) in msg, msg


def test_bad_adversary_config_fails_the_run_before_any_work(tmp_path):
    from bench.run.runner import Runner
    from bench.run.suites import get_suite

    suite = get_suite("smoke").with_overrides(adversaries=("none", "gaussian-blur-1"),
                                              adversary_overrides={"gaussian-blur-1": {"sigma": -1.0}})
    runner = Runner(suite, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"sigma must be in \(0, 10\], got -1.0"):
        runner.run()
    assert not (tmp_path / "run").exists()  # a refused run writes nothing


DENOISERS = ["gaussian-blur-1", "median-3", "median-5", "bilateral", "nl-means-10", "tv-denoise-0.1", "wavelet",
             "resize-0.5", "jpeg-50", "webp-50"]


@pytest.mark.parametrize("name", DENOISERS)
def test_denoisers_bring_a_noisy_face_closer_to_the_clean_one(name, lfw_faces):
    clean = lfw_faces["Colin_Powell"][:3]
    noisy = published(clean + sign_noise(clean.shape, 8 / 255, seed=1))
    restored = ADVERSARIES.create(name).apply(noisy)
    before = (noisy - clean).abs().mean()
    after = (restored - clean).abs().mean()
    assert after < 0.8 * before, f"{name}: mean error {255 * after:.2f} vs {255 * before:.2f} grey levels"


def test_bit_depth_keeps_levels_and_erases_what_is_below_half_a_level(lfw_faces):
    clean = published(lfw_faces["Tony_Blair"][:2])
    squeezed = ADVERSARIES.create("bit-depth-3").apply(clean)
    assert len(torch.unique(squeezed)) <= 8
    levels = torch.round(clean * 7) / 7  # exactly representable photo: a small change vanishes
    nudged = published(levels + sign_noise(levels.shape, 4 / 255, seed=2))
    assert torch.equal(ADVERSARIES.create("bit-depth-3").apply(nudged), levels)


def test_resize_pad_is_seeded(lfw_faces):
    x = lfw_faces["Tony_Blair"][:3]
    a, b = ADVERSARIES.create("resize-pad").apply(x), ADVERSARIES.create("resize-pad").apply(x)
    c = ADVERSARIES.create("resize-pad", seed=7).apply(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a == 0).all(dim=1).any()  # padded somewhere


def smooth_universal_mask(amplitude: float, seed: int) -> torch.Tensor:
    """A sign-like mask (universal masks saturate at their budget) with 2-pixel structure, 3 x 224 x 224."""
    coarse = sign_noise((1, 3, 112, 112), amplitude, seed)
    return torch.nn.functional.interpolate(coarse, scale_factor=2, mode="nearest")[0]


@pytest.mark.parametrize("name", ["mask-mean-highpass", "mask-median-denoised", "mask-low-rank", "mask-estimation"])
def test_mask_estimation_removes_a_shared_mask_but_not_per_photo_noise(name, lfw_faces):
    clean = lfw_faces["George_W_Bush"]
    adversary = ADVERSARIES.create(name)
    assert adversary.kind == "estimation"
    universal = published(clean + smooth_universal_mask(8 / 255, seed=3))
    restored = adversary.apply(universal)
    before, after = (universal - clean).abs().mean(), (restored - clean).abs().mean()
    assert after < 0.6 * before, f"{name}: {255 * after:.2f} vs {255 * before:.2f} grey levels"
    per_image = published(clean + torch.stack([smooth_universal_mask(8 / 255, seed=10 + i) for i in range(len(clean))]))
    gain = (per_image - clean).abs().mean() - (adversary.apply(per_image) - clean).abs().mean()
    assert gain < 0.5 * (before - after), "a per-photo perturbation must not be estimated as well as a shared one"
    one = universal[:1]
    assert torch.equal(adversary.apply(one), one)  # one photo: nothing to estimate from


# -- the training adversaries: a real method (PGD on SFace), real targets, the owner's own LFW people ----------

@pytest.fixture(scope="module")
def owner_run(shared_data, lfw_faces, tmp_path_factory):
    """A run context whose identity bank (the owner's own people) leaves out the evaluated people (lfw_faces)."""
    from bench.run.assembly import standalone_context

    return standalone_context(shared_data, exclude=tuple(lfw_faces), cache_dir=tmp_path_factory.mktemp("owner"))


@pytest.fixture(scope="module")
def sface():
    from bench.registry import TARGETS

    target = TARGETS.create("sface")
    target.load()
    return target


@pytest.fixture(scope="module")
def mobileface():
    from bench.registry import TARGETS

    target = TARGETS.create("mobileface")
    target.load()
    return target


def adversary_context(cache_dir, owner_run, adversary, surrogates, steps=2):
    """What the runner hands ``adversary``: the run context bound to its needs, PGD as the method under test."""
    import dataclasses

    from bench.registry import METHODS
    from bench.run.context import AdversaryContext

    method = METHODS.create("pgd", steps=steps)
    run = dataclasses.replace(owner_run, cache_dir=cache_dir).for_plugin(adversary.needs())
    return AdversaryContext(run=run, method=method, surrogates=surrogates)


def test_the_owners_people_are_a_declared_identity_bank_without_evaluated_people(owner_run, lfw_faces, sface):
    from bench.run.context import AdversaryContext, ContextError

    adversary = ADVERSARIES.create("robust-finetune", identities=3, photos=2)
    assert [n.label for n in adversary.needs()] == ["identity_bank/3x2"]
    bank = owner_run.identity_bank(3, 2)
    assert len(bank.names) == 3 and not set(bank.names) & set(lfw_faces)
    undeclared = AdversaryContext(run=owner_run.for_plugin([]), method=None, surrogates=[sface])
    with pytest.raises(ContextError, match="not declared"):
        undeclared.run.identity_bank(3, 2)


def test_adaptive_adversaries_need_a_context(sface):
    for name in ("purification", "robust-finetune"):
        with pytest.raises(ValueError, match="AdversaryContext"):
            ADVERSARIES.create(name).adapt(sface)


def test_purification_trains_a_wrapper_and_caches_it(tmp_path, owner_run, sface, shared_data):
    from bench.data.datasets import lfw_fingerprint

    settings = dict(identities=3, photos=2, steps=10, batch=2, width=8, layers=3)
    adversary = ADVERSARIES.create("purification", **settings)
    context = adversary_context(tmp_path, owner_run, adversary, [sface])
    assert adversary.kind == "adaptation"
    purified_target = adversary.adapt(sface, context)
    info = adversary.info()
    assert info["cached"] is False and info["pairs"] == 6 and info["adapt_s"] >= info["train_s"] > 0
    fingerprint = lfw_fingerprint(shared_data)
    assert purified_target is not sface and purified_target.thresholds(fingerprint) == sface.thresholds(fingerprint)
    photos = owner_run.identity_bank(3, 2).canvases[:2]
    assert purified_target.embed(photos).shape == (2, sface.embedding_dim)
    assert purified_target.purify(photos).shape == photos.shape
    again = ADVERSARIES.create("purification", **settings)
    again.adapt(sface, context)
    assert again.info()["cached"] is True and again.info()["train_s"] == info["train_s"]


def test_robust_finetune_pulls_protected_to_clean_and_is_cached(tmp_path, owner_run, sface, mobileface):
    from attacks._adaptive import protected_pairs

    before = {k: v.clone() for k, v in mobileface.network.state_dict().items()}
    settings = dict(identities=3, photos=2, epochs=3, batch=6, lr=1e-4)
    adversary = ADVERSARIES.create("robust-finetune", **settings)
    context = adversary_context(tmp_path, owner_run, adversary, [sface])
    tuned = adversary.adapt(mobileface, context)
    info = adversary.info()
    assert tuned is not mobileface and info["cached"] is False and info["adapt_s"] > 0
    assert all(torch.equal(v, mobileface.network.state_dict()[k]) for k, v in before.items())  # original untouched
    pairs = protected_pairs(context, 3, 2, seed=0)
    assert pairs.cached  # made once, read back
    with torch.no_grad():
        anchor = mobileface.embed(pairs.clean)
        was = (mobileface.embed(pairs.protected) * anchor).sum(1).mean()
        now = (tuned.embed(pairs.protected) * anchor).sum(1).mean()
        kept = (tuned.embed(pairs.clean) * anchor).sum(1).mean()
    assert now > was and kept > 0.9, (float(was), float(now), float(kept))
    again = ADVERSARIES.create("robust-finetune", **settings)
    reused = again.adapt(mobileface, context)
    assert again.info()["cached"] is True
    with torch.no_grad():
        assert torch.allclose(reused.embed(pairs.protected), tuned.embed(pairs.protected), atol=1e-5)


@pytest.mark.parametrize("name", ["robust-finetune", "purification"])
def test_training_adversaries_refuse_a_black_box(name, tmp_path, owner_run, sface):
    """Both train through the owner's recogniser (fine-tuning it, or a purifier in its feature space)."""
    from bench.registry import TARGETS

    adversary = ADVERSARIES.create(name, identities=3, photos=2)
    context = adversary_context(tmp_path, owner_run, adversary, [sface])
    with pytest.raises(ValueError, match="differentiable"):
        adversary.adapt(TARGETS.create("dlib"), context)


@pytest.mark.slow
def test_purifier_moves_protected_photos_back_towards_clean(tmp_path, owner_run, sface):
    """In the recogniser's feature space, where it is trained (a pixel loss alone leaves PGD's noise in place):
    purified protected photos embed near their clean photos again, and clean photos stay where they were."""
    from attacks._adaptive import protected_pairs

    adversary = ADVERSARIES.create("purification", identities=3, photos=2, steps=60, batch=4)
    context = adversary_context(tmp_path, owner_run, adversary, [sface], steps=5)
    purified_target = adversary.adapt(sface, context)
    pairs = protected_pairs(context, 3, 2, seed=0)
    with torch.no_grad():
        clean = sface.embed(pairs.clean)
        before = F.cosine_similarity(sface.embed(pairs.protected), clean).mean()
        after = F.cosine_similarity(purified_target.embed(pairs.protected), clean).mean()
        kept = F.cosine_similarity(purified_target.embed(pairs.clean), clean).mean()
    # after this short training clean photos stay far above SFace's same-person cosine threshold (0.363, OpenCV's)
    assert after > before + 0.2 and kept > 0.85, (float(before), float(after), float(kept))
