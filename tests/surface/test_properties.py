"""Property-based tests (hypothesis): PSR and bootstrap math, align/un-align geometry, photo orientation, and the
command line's ``--set`` parsing fuzzed. Pure math on generated inputs; the photo tests use a real face."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bench.data.canvas import (
    ARCFACE_112,
    CANVAS_TEMPLATE,
    Framing,
    from_uint8,
    invert_affine,
    similarity_fit,
    to_uint8,
)
from bench.data.decoding import decode_photo
from bench.data.faces import to_full_size, warp_to_canvas
from bench.measures.psr import bootstrap_ci, summarise, true_identity_rank, user_outcome

PURE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def gallery_and_queries(draw):
    """Unit templates of 2..9 identities and 1..6 unit queries of one user, in 2..8 dimensions."""
    dim = draw(st.integers(2, 8))
    n_ids = draw(st.integers(2, 9))
    n_q = draw(st.integers(1, 6))
    unit_floats = st.floats(-1, 1, allow_nan=False, width=32)
    templates = draw(arrays(np.float32, (n_ids, dim), elements=unit_floats))
    queries = draw(arrays(np.float32, (n_q, dim), elements=unit_floats))
    assume(np.linalg.norm(templates, axis=1).min() > 1e-3 and np.linalg.norm(queries, axis=1).min() > 1e-3)
    user = draw(st.integers(0, n_ids - 1))
    return (F.normalize(torch.from_numpy(templates), dim=1), F.normalize(torch.from_numpy(queries), dim=1), user)


@PURE
@given(gallery_and_queries(), st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=4))
def test_psr_lies_in_0_1_and_never_rises_with_k_nor_falls_with_the_threshold(case, thresholds):
    templates, queries, user = case
    names = [f"id{i}" for i in range(len(templates))]
    ranks = true_identity_rank(queries, templates, user)
    assert ((ranks >= 1) & (ranks <= len(names))).all()
    ks = tuple(range(1, len(names) + 1))
    outcome = user_outcome(names[user], queries, templates, names, ks=ks)
    psr = [outcome.psr[f"top{k}"] for k in ks]
    assert all(0 <= p <= 1 for p in psr)
    assert all(a >= b for a, b in zip(psr, psr[1:], strict=False)) and psr[-1] == 0  # the truth is always in the top n
    thr = sorted(thresholds)
    by_far = user_outcome(names[user], queries, templates, names, {f"t{i}": t for i, t in enumerate(thr)}).psr
    verification = [by_far[f"t{i}"] for i in range(len(thr))]
    assert all(a <= b for a, b in zip(verification, verification[1:], strict=False))


@PURE
@given(gallery_and_queries(), st.data())
def test_adding_an_impostor_to_the_gallery_never_lowers_psr(case, data):
    templates, queries, user = case
    extra = data.draw(arrays(np.float32, (1, templates.shape[1]), elements=st.floats(-1, 1, width=32)))
    assume(np.linalg.norm(extra) > 1e-3)
    names = [f"id{i}" for i in range(len(templates))]
    before = user_outcome(names[user], queries, templates, names).psr
    bigger = torch.cat([templates, F.normalize(torch.from_numpy(extra), dim=1)])
    after = user_outcome(names[user], queries, bigger, [*names, "zz-impostor"]).psr
    assert all(after[k] >= before[k] for k in before)


@PURE
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40), st.integers(0, 2**16))
def test_the_bootstrap_interval_holds_the_mean_within_the_values(per_user, seed):
    lo, hi = bootstrap_ci(per_user, n_boot=400, seed=seed)
    mean = float(np.mean(per_user))
    eps = 1e-12  # the same sum taken in another order may differ in its last bit
    assert min(per_user) - eps <= lo <= mean + eps and mean - eps <= hi <= max(per_user) + eps
    summary = summarise(per_user)
    assert summary["ci"][0] <= summary["mean"] + eps and summary["mean"] - eps <= summary["ci"][1]


@st.composite
def similarity(draw):
    scale = draw(st.floats(0.05, 20))
    angle = draw(st.floats(-math.pi, math.pi))
    shift = np.array([draw(st.floats(-500, 500)), draw(st.floats(-500, 500))])
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.hstack([rot, shift[:, None]])


@PURE
@given(similarity(), arrays(np.float64, (5, 2), elements=st.floats(0, 250)))
def test_similarity_fit_and_its_inverse_round_trip_points(matrix, points):
    spread = points - points.mean(0)
    assume(np.linalg.svd(spread, compute_uv=False)[-1] > 5)  # five points not (nearly) on one line
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    fit = similarity_fit(points, mapped)
    assert np.allclose(fit, matrix, rtol=1e-6, atol=1e-6 * (1 + np.abs(matrix).max()))
    back = invert_affine(fit)
    restored = mapped @ back[:, :2].T + back[:, 2]
    assert np.allclose(restored, points, atol=1e-6 * (1 + np.abs(mapped).max()))


@PURE
@given(similarity(), st.floats(0.05, 1.0), st.floats(0.98, 1.02))
def test_matrices_found_on_a_downscaled_photo_hold_for_the_full_size_photo(matrix, scale, aspect):
    """Un-aligning onto the original photo: the full-size matrix sends full-size landmarks where the decoded
    photo's matrix sent the decoded landmarks."""
    sx, sy = scale, scale * aspect
    small = ARCFACE_112 * 2 + 30
    full_matrix, full_landmarks, _ = to_full_size(matrix, small, np.array([0, 0, 10, 10.0]), (sx, sy))
    assert np.allclose(full_landmarks * [sx, sy], small)
    via_full = full_landmarks @ full_matrix[:, :2].T + full_matrix[:, 2]
    via_small = small @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(via_full, via_small, atol=1e-6 * (1 + np.abs(via_small).max()))


@settings(max_examples=40, deadline=None)
@given(st.integers(56, 160), st.floats(0.7, 1.3), st.floats(-8, 8), st.floats(-8, 8),
       st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1))
def test_framing_crop_samples_the_canvas_where_its_template_says(size, zoom, dx, dy, a, b, c):
    """On a linear ramp canvas bilinear sampling is exact, so the crop's pixels tell where they were taken:
    pixel (u, v) of the crop must come from the canvas point crop_to_canvas maps it to."""
    framing = Framing.arcface(size, zoom=zoom, shift=(dx, dy))
    assume(framing.pixels_per_canvas_pixel() >= 0.8)  # no antialiased pre-shrink (not linear-exact)
    ys, xs = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
    canvas = (a * xs + b * ys + c)[None, None].expand(1, 3, 224, 224)
    crop = framing.crop(canvas)[0, 0].double().numpy()
    m = framing.crop_to_canvas()
    v, u = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    cx, cy = m[0, 0] * u + m[0, 1] * v + m[0, 2], m[1, 0] * u + m[1, 1] * v + m[1, 2]
    inside = (cx > 1) & (cx < 222) & (cy > 1) & (cy < 222)
    assume(inside.mean() > 0.5)
    assert np.allclose(crop[inside], (a * cx + b * cy + c)[inside], atol=1e-4)
    template = np.asarray(framing.template) @ m[:, :2].T + m[:, 2]
    assert np.allclose(template, CANVAS_TEMPLATE, atol=1e-6)


@PURE
@given(arrays(np.uint8, (2, 3, 4, 4)), arrays(np.float32, (2, 3, 4, 4), elements=st.floats(0, 1, width=32)))
def test_eight_bit_round_trips(u8, x):
    u = torch.from_numpy(u8)
    assert torch.equal(to_uint8(from_uint8(u)), u)
    assert (from_uint8(to_uint8(torch.from_numpy(x))) - torch.from_numpy(x)).abs().max() <= 0.5 / 255 + 1e-7


# EXIF orientation -> how the stored pixels were turned from the upright photo (what a camera wrote)
_STORED = {1: None, 2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_90",
           7: "TRANSVERSE", 8: "ROTATE_270"}


@pytest.fixture(scope="module")
def upright_face(shared_data):
    from PIL import Image

    return Image.open(shared_data / "wild" / "person_a_1.jpg").convert("RGB")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(orientation=st.integers(1, 8), max_side=st.sampled_from([None, 300, 150]))
def test_every_exif_orientation_decodes_upright(upright_face, tmp_path, orientation, max_side):
    from PIL import Image

    stored = upright_face if _STORED[orientation] is None else upright_face.transpose(
        getattr(Image.Transpose, _STORED[orientation]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    stored.save(path, exif=exif)
    rgb, scale = decode_photo(path, max_side)
    full = np.asarray(upright_face)
    if max_side is None or max(full.shape[:2]) <= max_side:
        assert np.array_equal(rgb, full) and scale == (1.0, 1.0)
    else:
        assert max(rgb.shape[:2]) == max_side
        assert np.allclose([rgb.shape[1] / full.shape[1], rgb.shape[0] / full.shape[0]], scale)
        shrunk = np.asarray(Image.fromarray(full).resize(rgb.shape[1::-1], Image.Resampling.BOX))
        assert np.abs(rgb.astype(int) - shrunk).mean() < 2


def test_warped_canvas_puts_landmarks_on_the_template(upright_face):
    rgb = np.asarray(upright_face)
    landmarks = ARCFACE_112 * 1.4 + [20, 40]
    canvas, matrix = warp_to_canvas(rgb, landmarks)
    assert canvas.shape == (224, 224, 3)
    assert np.allclose(landmarks @ matrix[:, :2].T + matrix[:, 2], CANVAS_TEMPLATE, atol=1e-6)


# -- the command line's --set ------------------------------------------------------------------------------

SETTING_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(SETTING_TEXT)
def test_parse_value_never_raises(text):
    from bench.commands._settings import parse_value

    parse_value(text)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=10), lambda inner: st.lists(inner, max_size=3), max_leaves=6))
def test_json_values_round_trip_and_fractions_divide(value):
    from bench.commands._settings import parse_value

    assert parse_value(json.dumps(value)) == value


@settings(max_examples=200, deadline=None)
@given(st.integers(-10**6, 10**6), st.integers(-10**6, 10**6).filter(bool))
def test_fractions_divide(num, den):
    from bench.commands._settings import parse_value

    assert parse_value(f"{num}/{den}") == num / den


def same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@settings(max_examples=300, deadline=None)
@given(st.lists(SETTING_TEXT, max_size=4))
def test_set_settings_either_merge_or_fail_with_one_line(settings_text):
    from bench.commands._settings import method_overrides, parse_value
    from bench.core.validation import UsageError

    try:
        merged = method_overrides({"pgd": {"steps": 2}}, settings_text)
    except UsageError as exc:
        assert str(exc).startswith("--set takes NAME.KEY=VALUE") and "\n" not in str(exc)  # input quoted by repr
        return
    last = {}
    for item in settings_text:  # a later setting of the same key wins
        target, _, value = item.partition("=")
        last[target.rpartition(".")[::2]] = value
    for (method, key), value in last.items():
        assert same(merged[method][key], parse_value(value))
    if ("pgd", "steps") not in last:
        assert merged["pgd"]["steps"] == 2


@st.composite
def method_setting(draw):
    import dataclasses

    from bench.registry import METHODS

    name = draw(st.sampled_from(METHODS.names()))
    fields = [f.name for f in dataclasses.fields(METHODS.entry(name).cls.Config)]
    key = draw(st.sampled_from(fields))
    text = draw(st.sampled_from(["NaN"]) | SETTING_TEXT | st.sampled_from(["0", "-1", "1e400", "NaN", "Infinity", "true", "null", "[1, 2]",
                                                   "16/255", "1/0", "2.5", "{\"a\": 1}", "\"x\""]))
    return name, key, text


@settings(max_examples=250, deadline=None)
@given(method_setting())
@example(("universal-mi", "iterations", "0"))  # found by the fuzzing: the message said "steps", not the key
def test_a_fuzzed_set_builds_the_method_or_names_the_key_in_one_line(setting):
    import dataclasses

    from bench.commands._settings import parse_value
    from bench.registry import METHODS, ConfigError

    name, key, text = setting
    value = parse_value(text)
    try:
        method = METHODS.create(name, **{key: value})
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"method '{name}': ") and "\n" not in message
        assert key in message or "must" in message or "one of" in message, message
        return
    built = getattr(method.config, key)
    field_type = {f.name: f.type for f in dataclasses.fields(method.config)}[key]
    if field_type in ("int", "float", "int | None", "float | None"):  # numbers stay numbers, never NaN
        assert built is None or (isinstance(built, int | float) and not isinstance(built, bool)
                                 and not math.isnan(built))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(SETTING_TEXT)
def test_bench_run_with_any_set_exits_2_in_one_line_before_any_work(tmp_path, capsys, text):
    from bench.cli import main

    out = tmp_path / "never"
    assert main(["run", "--suite", "smoke", f"--set={text}", "--data-root", str(tmp_path / "missing"),  # = form: any text
                 "--out", str(out)]) == 2
    printed = capsys.readouterr().out.strip()
    assert printed.count("\n") == 0 and printed and not out.exists()
