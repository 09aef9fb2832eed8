"""Weight files a user brings (checkpoints that no package registry carries), found by path and verified.

Several targets run checkpoints that only their authors' release pages or model zoos distribute (facenet's
VGGFace2/CASIA InceptionResnetV1, InsightFace's ArcFace ONNX packs, the AMT-GAN/TIP-IM surrogate zoo). Such a
target names the file with a ``WeightSpec`` of ``source="path"``; where its digest is known the spec (or the
target's config) pins it, otherwise the file is used as found and its digest is reported so it can be pinned.

Lookup order: an explicit path from the target's config, then ``BENCH_WEIGHTS_<NAME>``, then the cache folder
``$BENCH_HOME/weights/<name>/<filename>``. A missing file, a digest mismatch or a file that does not parse as
the expected kind raises :class:`bench.models.weights.WeightError` with one message that says what to do.
"""

from __future__ import annotations

from pathlib import Path

from bench.models.weights import WeightError, WeightSpec, cache_dir, candidate_path, note_file, sha256_of


def missing_message(spec: WeightSpec, path: str = "") -> str:
    where, rule = candidate_path(spec, path)
    hint = f"set {spec.env_var}=/path/to/{spec.filename}, pass weights_path=..., or copy it to " \
           f"{cache_dir(spec) / spec.filename}"
    if spec.url:
        hint += f" (published at {spec.url})"
    if where is None:
        return f"weights '{spec.name}' not present: {hint}"
    return f"weights '{spec.name}': {rule} {where} does not exist; {hint}"


def user_file_status(spec: WeightSpec, path: str = "") -> tuple[bool, str | None]:
    """Cheap check for listings: is the file there (its digest is checked when it is loaded)?"""
    where, _ = candidate_path(spec, path)
    if where is not None and where.is_file():
        return True, None
    return False, missing_message(spec, path)


def locate_user_file(spec: WeightSpec, path: str = "", sha256: str = "") -> Path:
    """The user's file for ``spec``, verified against ``sha256`` (or the spec's digest) when one is given."""
    where, rule = candidate_path(spec, path)
    if where is None or not where.is_file():
        raise WeightError(missing_message(spec, path))
    expected = (sha256 or spec.sha256).lower()
    got = sha256_of(where)
    if expected and got != expected:
        raise WeightError(
            f"{where} ({rule}) has SHA-256 {got}, expected {expected} for '{spec.name}': it is a different "
            "or corrupt file; fetch it again or fix the configured digest"
        )
    return note_file(where, got)


def load_state_dict(path: Path, name: str) -> dict:
    """A torch state dict saved by ``torch.save``, read without unpickling arbitrary objects.

    Accepts a bare state dict or a checkpoint holding one under ``state_dict``; drops a ``module.`` prefix left
    by ``DataParallel``.
    """
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, not a torch file, or a pickle of foreign objects
        raise WeightError(
            f"{path} is not a readable torch state dict for '{name}' ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}); it may be truncated or a different kind of file"
        ) from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightError(f"{path} holds {type(obj).__name__}, not a state dict of tensors, for '{name}'")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_into(module, state: dict, path: Path, name: str, ignore_prefixes: tuple[str, ...] = ()) -> None:
    """``module.load_state_dict`` with one clear message naming missing, unexpected or mis-shaped keys.

    The tensors are assigned, not copied, so ``module`` may be built on the ``meta`` device (no random init).
    """
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise WeightError(
            f"{path} does not fit the '{name}' architecture: {'; '.join(parts)}. Is it the right checkpoint?"
        )
    module.load_state_dict(state, assign=True)
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise WeightError(f"'{name}': {len(left)} tensors were not set by {path} (e.g. {', '.join(left[:3])})")
