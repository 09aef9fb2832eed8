"""Expand a suite into a small DAG of content-keyed tasks and run it, resuming from the store.

Tasks
- ``clean/<target>``: clean embeddings of every gallery photo and every user's probe photos (once per target).
- ``protect/<method>/<user>/<seed>``: fit the method on the user's fit photos (universal) and protect the user's
  probe photos; records quality (SSIM/PSNR/LPIPS on the face box), the budget actually used, fit and protect time.
  The protected photos (8-bit) and, for key-holding methods, their de-obfuscated versions are artifacts.
- ``eval/<method>/<adversary>/<target>``: the adversary's view of every user's protected probes, ranked against the
  clean gallery: per-user PSR top-1/top-5 (and verification PSR when the target is calibrated); for key-holding
  methods, authorized accuracy (rank-1 after the key holder removes the mask).
- ``eval/clean/none/<target>``: the same on clean probes, the baseline.

A task's key hashes its inputs, config and code version; finished keys are skipped on a rerun, and a changed
config recomputes only the tasks it touches. Tasks are plain callables run by an executor (local today; the same
functions can be mapped onto Ray tasks).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import bench
from bench.canvas import face_region, from_uint8, to_uint8
from bench.data import (
    DataError,
    Dataset,
    IdentitySplit,
    load_identity_folders,
    resolve_data_root,
    split_identity,
)
from bench.faces import Aligner, FaceError
from bench.metrics import identity_templates, probe_outcome, user_outcome
from bench.quality import psnr, ssim
from bench.registry import ATTACKS, METHODS, TARGETS, UnknownNameError
from bench.store import ResultRow, RunStore
from bench.suites import Suite
from bench.weights import WeightError, ensure, sha256_of


def content_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def code_version(obj: Any) -> str:
    """Hash of the source file defining ``obj``'s class (plus the package version): code changes re-key tasks."""
    cls = obj if isinstance(obj, type) else type(obj)
    h = hashlib.sha256(bench.__version__.encode())
    for klass in cls.__mro__:
        try:
            src = inspect.getsourcefile(klass)
        except TypeError:
            continue
        if src and "site-packages" not in src and os.path.exists(src):
            h.update(Path(src).read_bytes())
    return h.hexdigest()[:12]


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str, threads: int) -> dict[str, Any]:
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cloakbench": bench.__version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "device": device,
        "cuda_device": torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None,
        "threads": threads,
    }


@dataclass
class Task:
    key: str
    kind: str
    label: str
    fn: Callable[[], tuple[dict[str, Any], list[ResultRow]]]
    deps: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    """The data side of a run: aligned canvases and splits of the selected identities."""

    dataset: Dataset
    users: list[str]
    splits: dict[str, IdentitySplit]
    canvases: dict[Path, np.ndarray]  # photo -> uint8 canvas
    digests: dict[Path, str]

    def stack(self, photos: list[Path]) -> torch.Tensor:
        arr = np.stack([self.canvases[p] for p in photos])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()  # uint8

    def gallery(self) -> tuple[list[Path], list[str]]:
        photos, labels = [], []
        for ident, split in sorted(self.splits.items()):
            photos += split.gallery
            labels += [ident] * len(split.gallery)
        return photos, labels


def surrogate_twins(target: Any, surrogates: list[Any]) -> list[str]:
    """Surrogates (other than the target itself) that load one of the target's weight files, e.g. SFace run by
    OpenCV when SFace's torch port is a surrogate: judging on such a target is white-box, not transfer."""
    mine = {w.sha256 for w in type(target).weights}
    return [s.name for s in surrogates if s.name != target.name and mine & {w.sha256 for w in type(s).weights}]


class Reporter:
    """Progress callbacks; the CLI supplies a rich implementation, tests a silent one."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, label: str = "") -> None: ...

    def message(self, text: str) -> None: ...


class Runner:
    def __init__(
        self, suite: Suite, run_dir: str | os.PathLike, data_root: str | None = None, device: str = "cpu",
        threads: int | None = None, reporter: Reporter | None = None,
    ):
        self.suite = suite
        self.store = RunStore(run_dir)
        self.data_root = data_root
        self.device = device
        self.threads = threads or torch.get_num_threads()
        self.reporter = reporter or Reporter()
        self.unavailable: dict[str, str] = {}  # target/method name -> reason

    # -- preparation --------------------------------------------------------------------------------------
    def validate_names(self) -> None:
        """Fail before any work on names that are not registered (the message lists the known ones)."""
        for registry, names in ((METHODS, self.method_names()), (ATTACKS, self.adversary_names()),
                                (TARGETS, self.target_names()), (TARGETS, self.suite.surrogates)):
            for name in names:
                registry.entry(name)
        stray = sorted(set(self.suite.method_overrides) - set(self.method_names()))
        if stray:
            raise ValueError(f"config overrides for {stray}, which this run does not include "
                             f"(its methods: {', '.join(self.method_names())})")
        for mname in self.method_names():  # a bad config key or value fails here, not hours into the run
            METHODS.create(mname, **self.suite.method_overrides.get(mname, {}))
        black_box = [name for name in self.suite.surrogates if not TARGETS.entry(name).cls.differentiable]
        if black_box:
            usable = [n for n in TARGETS.names() if TARGETS.entry(n).cls.differentiable]
            raise ValueError(f"surrogates {black_box} are black boxes (no gradients); differentiable targets: "
                             f"{', '.join(usable)}")

    @staticmethod
    def _expand(names: tuple[str, ...], registry) -> list[str]:
        """A suite's names, with "*" standing for every registered one."""
        if "*" in names:
            return registry.names()
        return list(names)

    def target_names(self) -> list[str]:
        return self._expand(self.suite.targets, TARGETS)

    def method_names(self) -> list[str]:
        return self._expand(self.suite.methods, METHODS)

    def adversary_names(self) -> list[str]:
        return self._expand(self.suite.adversaries, ATTACKS)

    def prepare_data(self) -> Prepared:
        root, how = resolve_data_root(self.data_root)
        self.reporter.message(f"data: {root} ({how})")
        ds = load_identity_folders(root, self.suite.dataset, min_photos=self.suite.min_gallery_photos)
        rng = np.random.default_rng(self.suite.split.seed)
        names = sorted(ds.identities)
        eligible = [n for n in names if len(ds.identities[n]) >= self.suite.min_user_photos]
        if len(eligible) < self.suite.users:
            raise ValueError(
                f"suite '{self.suite.name}' wants {self.suite.users} users with >= {self.suite.min_user_photos} "
                f"photos; {ds.root} has {len(eligible)}"
            )
        users = sorted(rng.permutation(eligible)[: self.suite.users].tolist())
        others = [n for n in rng.permutation(names).tolist() if n not in users]
        if self.suite.gallery_identities is not None:
            others = others[: max(0, self.suite.gallery_identities - len(users))]
        selected = sorted(users + others)
        # Split on file lists first, then align only what is used: every photo of a user, the gallery part of
        # a distractor. A photo that fails alignment leaves its part; an identity left without a gallery (or a
        # user without probes or fit photos) leaves the run, with the reason recorded.
        splits: dict[str, IdentitySplit] = {}
        for ident in selected:
            try:
                splits[ident] = split_identity(ident, ds.identities[ident], self.suite.split)
            except DataError as exc:
                self.store.skip(ident, str(exc))
        needed = [p for ident, sp in splits.items()
                  for p in (sp.gallery + sp.probe + sp.fit if ident in users else sp.gallery)]
        aligner = Aligner(device=self.device)
        self.reporter.phase("align faces", len(needed))
        canvases, digests = {}, {}
        for p in needed:
            try:
                canvases[p] = aligner.align(p).canvas
                digests[p] = sha256_of(p)
            except FaceError as exc:
                self.store.skip(str(p), str(exc))
                self.reporter.message(f"[yellow]skipped[/yellow] {exc}")
            self.reporter.advance()
        for ident in list(splits):
            sp = splits[ident]
            sp.gallery, sp.probe, sp.fit = ([p for p in part if p in canvases] for part in (sp.gallery, sp.probe, sp.fit))
            if not sp.gallery or (ident in users and not (sp.probe and sp.fit)):
                self.store.skip(ident, "no usable gallery photo" if not sp.gallery else "no usable probe or fit photo")
                del splits[ident]
        users = [u for u in users if u in splits]
        if not users:
            raise ValueError("no protected user is left after alignment; see the skipped items in the store")
        return Prepared(ds, users, splits, canvases, digests)

    def load_targets(self, names: list[str]) -> dict[str, Any]:
        """Create, fetch and load targets; the ones that cannot run are recorded as unavailable."""
        loaded = {}
        for name in names:
            if name in self.unavailable:
                continue
            try:
                target = TARGETS.create(name, device=self.device)
                for spec in type(target).weights:
                    ensure(spec, log=self.reporter.message)
                ok, reason = type(target).runtime_available()
                if not ok:
                    raise WeightError(reason or "runtime unavailable")
                target.load()
                loaded[name] = target
            except (WeightError, ImportError, OSError, RuntimeError, ValueError) as exc:
                self.unavailable[name] = str(exc)
                self.reporter.message(f"[red]target {name} unavailable[/red]: {exc}")
        return loaded

    # -- plan -----------------------------------------------------------------------------------------------
    def plan(self, data: Prepared, targets: dict[str, Any], surrogates: list[Any]) -> tuple[list[Task], dict]:
        suite = self.suite
        gallery_photos, gallery_labels = data.gallery()
        split_desc = asdict(suite.split)
        tasks: list[Task] = []
        plan: dict[str, Any] = {"users": data.users, "targets": {}, "methods": {}, "adversaries": self.adversary_names(),
                                "scenarios": list(suite.scenarios)}
        surrogate_ids = [(s.name, [sha256_of(ensure(w)) for w in type(s).weights], code_version(s)) for s in surrogates]

        clean_keys = {}
        for tname, target in targets.items():
            key = content_key("clean", tname, code_version(target), [w.sha256 for w in type(target).weights],
                              [data.digests[p] for p in gallery_photos],
                              {u: [data.digests[p] for p in data.splits[u].probe] for u in data.users})
            clean_keys[tname] = key
            tasks.append(Task(key, "clean", f"clean/{tname}",
                              self._clean_task(key, target, data, gallery_photos, gallery_labels)))
            twins = surrogate_twins(target, surrogates)
            plan["targets"][tname] = {"clean_key": key, "white_box": tname in suite.surrogates or bool(twins),
                                      "differentiable": target.differentiable, "thresholds": target.thresholds()}
            if twins:
                plan["targets"][tname]["same_weights_as"] = twins
        for tname, reason in self.unavailable.items():
            plan["targets"].setdefault(tname, {"unavailable": reason})

        for mname in self.method_names():
            overrides = suite.method_overrides.get(mname, {})
            entry: dict[str, Any] = {"overrides": overrides, "protect": {}, "eval": {}}
            plan["methods"][mname] = entry
            try:
                method = METHODS.create(mname, **overrides)
            except Exception as exc:
                entry["status"], entry["reason"] = "unavailable", str(exc)
                continue
            ok, reason = METHODS.entry(mname).availability()
            if not ok:
                entry["status"], entry["reason"] = "unavailable", reason
                continue
            entry.update(kind=method.kind, budget=method.budget().as_dict(), config=asdict(method.config),
                         status="planned")
            for seed in suite.seeds:
                for user in data.users:
                    sp = data.splits[user]
                    key = content_key("protect", mname, asdict(method.config), code_version(method), surrogate_ids,
                                      [data.digests[p] for p in sp.fit], [data.digests[p] for p in sp.probe],
                                      seed, suite.quantize, split_desc, sorted(suite.scenarios))
                    entry["protect"].setdefault(str(seed), {})[user] = key
                    tasks.append(Task(key, "protect", f"protect/{mname}/{user}/{seed}",
                                      self._protect_task(key, method, surrogates, data, user, seed)))
            for seed in suite.seeds:
                protect_keys = entry["protect"][str(seed)]
                for aname in self.adversary_names():
                    adversary = ATTACKS.create(aname)
                    for tname, target in targets.items():
                        key = content_key("eval", mname, aname, asdict(adversary.config), code_version(adversary),
                                          tname, clean_keys[tname], protect_keys, target.thresholds(),
                                          sorted(suite.scenarios), suite.protocol)
                        entry["eval"].setdefault(str(seed), {}).setdefault(aname, {})[tname] = key
                        tasks.append(Task(key, "eval", f"eval/{mname}/{aname}/{tname}",
                                          self._eval_task(key, mname, adversary, target, clean_keys[tname],
                                                          protect_keys, data),
                                          deps=[clean_keys[tname], *protect_keys.values()]))
        plan["clean_eval"] = {}
        for tname, target in targets.items():
            key = content_key("eval-clean", tname, clean_keys[tname], target.thresholds(), suite.protocol)
            plan["clean_eval"][tname] = key
            tasks.append(Task(key, "eval", f"eval/clean/{tname}",
                              self._eval_task(key, None, ATTACKS.create("none"), target, clean_keys[tname], {}, data),
                              deps=[clean_keys[tname]]))
        return tasks, plan

    # -- task bodies -------------------------------------------------------------------------------------
    def _clean_task(self, key, target, data: Prepared, gallery_photos, gallery_labels):
        def run():
            with torch.no_grad():
                gallery = target.embed(from_uint8(data.stack(gallery_photos)).to(self.device))
                tensors = {"gallery": gallery}
                for user in data.users:
                    tensors[f"probe/{user}"] = target.embed(from_uint8(data.stack(data.splits[user].probe)).to(self.device))
            self.store.save_artifact(key, tensors)
            return {"gallery_labels": gallery_labels, "target": target.name}, []

        return run

    def _protect_task(self, key, method, surrogates, data: Prepared, user: str, seed: int):
        def run():
            split = data.splits[user]
            fit_photos = from_uint8(data.stack(split.fit)).to(self.device)
            probes = from_uint8(data.stack(split.probe)).to(self.device)
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            protector = method.fit(fit_photos, surrogates, seed)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            protected = protector.protect(probes)
            protect_ms = 1000 * (time.perf_counter() - t0) / max(1, len(probes))
            protected = protected.detach()
            linf = float((protected - probes).abs().max()) if len(probes) else 0.0
            budget = method.budget()
            if budget.linf is not None and linf > budget.linf + 1e-5:
                raise AssertionError(f"{method.name} exceeded its L-inf budget: {linf:.5f} > {budget.linf:.5f}")
            published = to_uint8(protected) if self.suite.quantize else protected
            tensors = {"protected": published}
            if "gallery" in self.suite.scenarios:
                enrolled = protector.protect(from_uint8(data.stack(split.gallery)).to(self.device)).detach()
                tensors["protected_gallery"] = to_uint8(enrolled) if self.suite.quantize else enrolled
            if protector.has_key:
                tensors["deobfuscated"] = to_uint8(protector.deobfuscate(from_uint8(published).to(self.device)))
            tensors.update({f"state/{k}": v for k, v in protector.state().items()})
            self.store.save_artifact(key, tensors)
            shown = from_uint8(published).to(self.device) if self.suite.quantize else protected
            rows = [ResultRow(m, v, method=method.name, user=user) for m, v in (
                ("ssim", float(ssim(face_region(shown), face_region(probes)).mean())),
                ("psnr", float(psnr(face_region(shown), face_region(probes)).clamp(max=100).mean())),
                ("linf", linf),
                ("fit_s", fit_s),
                ("protect_ms_per_photo", protect_ms),
                ("probes", float(len(probes))),
            )]
            lp = self._lpips(face_region(shown), face_region(probes))
            if lp is not None:
                rows.append(ResultRow("lpips", lp, method=method.name, user=user))
            return {"info": protector.info(), "budget": budget.as_dict(), "kind": method.kind}, rows

        return run

    def _lpips(self, x: torch.Tensor, y: torch.Tensor) -> float | None:
        if getattr(self, "_lpips_model", None) is False:
            return None
        try:
            if getattr(self, "_lpips_model", None) is None:
                from bench.lpips import get_lpips

                self._lpips_model = get_lpips(self.device)
            with torch.no_grad():
                return float(self._lpips_model(x, y).mean())
        except Exception as exc:  # LPIPS is a quality extra: report why it is missing, keep the run going
            self._lpips_model = False
            self.reporter.message(f"[yellow]LPIPS unavailable[/yellow]: {exc}")
            return None

    def _eval_task(self, key, mname, adversary, target, clean_key, protect_keys, data: Prepared):
        def run():
            clean = self.store.load_artifact(clean_key)
            labels = self.store.task(clean_key)["info"]["gallery_labels"]
            eval_target = adversary.adapt(target)
            with torch.no_grad():
                if eval_target is target:
                    gallery_emb = clean["gallery"].to(self.device)
                    clean_probe = {u: clean[f"probe/{u}"].to(self.device) for u in data.users}
                else:  # an adapted recogniser re-embeds everything it sees
                    gallery_emb = eval_target.embed(from_uint8(data.stack(data.gallery()[0])).to(self.device))
                    clean_probe = {u: eval_target.embed(from_uint8(data.stack(data.splits[u].probe)).to(self.device))
                                   for u in data.users}
            templates, names = identity_templates(gallery_emb, labels)
            thresholds = target.thresholds()
            rows: list[ResultRow] = []
            method = mname or "clean"

            def add(scenario, user, outcome):
                tags = dict(method=method, scenario=scenario, adversary=adversary.name, target=target.name, user=user)
                rows.extend(ResultRow(f"psr_{m}", v, **tags) for m, v in outcome.psr.items())
                rows.append(ResultRow("queries", outcome.queries, **tags))

            for user in data.users:
                if mname is None:
                    add("probe", user, probe_outcome(self.suite.protocol, user, clean_probe[user], gallery_emb,
                                                     labels, thresholds))
                    continue
                art = self.store.load_artifact(protect_keys[user])
                with torch.no_grad():
                    if "probe" in self.suite.scenarios:
                        seen = eval_target.embed(adversary.apply(from_uint8(art["protected"]).to(self.device)))
                        add("probe", user, probe_outcome(self.suite.protocol, user, seen, gallery_emb, labels,
                                                         thresholds))
                    if "gallery" in self.suite.scenarios:
                        # The recogniser enrols the user's protected photos and is queried with clean ones.
                        enrolled = eval_target.embed(adversary.apply(from_uint8(art["protected_gallery"]).to(self.device)))
                        swapped = templates.clone()
                        swapped[names.index(user)] = F.normalize(enrolled.sum(0), dim=0)
                        add("gallery", user, user_outcome(user, clean_probe[user], swapped, names, thresholds))
                    if "deobfuscated" in art and adversary.name == "none":
                        restored = target.embed(from_uint8(art["deobfuscated"]).to(self.device))
                        auth = user_outcome(user, restored, templates, names, ks=(1,))
                        rows.append(ResultRow("authorized_top1_accuracy", 1 - auth.psr["top1"], method=method,
                                              adversary=adversary.name, target=target.name, user=user))
            return {"gallery_identities": len(names)}, rows

        return run

    # -- execution ------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        torch.set_num_threads(self.threads)
        self.validate_names()
        self.store.set_meta("suite", self.suite.as_dict())
        env = environment(self.device, self.threads)
        self.store.set_meta("environment", env)
        # A resumed run mixes tasks from several invocations: keep each one's time and code revision.
        history = self.store.get_meta("invocations", [])
        self.store.set_meta("invocations", [*history, {k: env.get(k) for k in ("created", "git_revision", "device")}])
        data = self.prepare_data()
        targets = self.load_targets(self.target_names())
        extra = self.load_targets([s for s in self.suite.surrogates if s not in targets])
        surrogates = [targets.get(s) or extra.get(s) for s in self.suite.surrogates]
        surrogates = [s for s in surrogates if s is not None]  # the unavailable ones were reported by load_targets
        if not surrogates:
            raise ValueError(f"none of the surrogates {list(self.suite.surrogates)} is available and differentiable")
        if not self.suite.white_box:
            clash = [t for t in targets.values() if t.name in self.suite.surrogates or surrogate_twins(t, surrogates)]
            if clash:
                raise ValueError(f"evaluated targets {[t.name for t in clash]} are surrogates or run a surrogate's "
                                 "weights; set white_box=True to allow it")
        tasks, plan = self.plan(data, targets, surrogates)
        plan["surrogates"] = [s.name for s in surrogates]
        plan["device"] = self.device
        plan["data"] = {"root": str(data.dataset.root), "identities": len(data.splits), "users": len(data.users),
                        "skipped": len(self.store.skipped())}
        self.store.set_meta("plan", plan)
        self.execute(tasks)
        self.write_examples(plan, data)
        return plan

    def write_examples(self, plan: dict[str, Any], data: Prepared) -> None:
        """A few clean / protected canvases per method (first user, first seed) for the report."""
        out = self.store.run_dir / "examples"
        out.mkdir(exist_ok=True)
        for mname, entry in plan["methods"].items():
            keys = next(iter(entry.get("protect", {}).values()), {})
            for user, key in keys.items():
                if not self.store.is_done(key):
                    continue
                protected = self.store.load_artifact(key)["protected"][: self.suite.examples]
                clean = data.stack(data.splits[user].probe)[: len(protected)]
                if protected.dtype != torch.uint8:
                    protected = to_uint8(protected)
                np.savez_compressed(out / f"{mname}.npz", clean=clean.permute(0, 2, 3, 1).numpy(),
                                    protected=protected.permute(0, 2, 3, 1).numpy())
                break

    def execute(self, tasks: list[Task]) -> None:
        todo = [t for t in tasks if not self.store.is_done(t.key)]
        self.reporter.message(f"{len(tasks) - len(todo)} of {len(tasks)} tasks already done")
        self.reporter.phase("tasks", len(todo))
        failed: set[str] = set()
        for task in todo:
            bad = [d for d in task.deps if d in failed or not self.store.is_done(d)]
            if bad:
                failed.add(task.key)
                self.store.record(task.key, task.kind, task.label, "failed", 0.0,
                                  error=f"skipped: {len(bad)} task(s) it needs failed")
                self.reporter.advance(task.label)
                continue
            t0 = time.perf_counter()
            try:
                info, rows = task.fn()
            except Exception as exc:
                failed.add(task.key)
                err = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                self.store.record(task.key, task.kind, task.label, "failed", time.perf_counter() - t0, error=err)
                self.reporter.message(f"[red]failed[/red] {task.label}: {err}")
            else:
                self.store.record(task.key, task.kind, task.label, "done", time.perf_counter() - t0, info, rows)
            self.reporter.advance(task.label)


__all__ = ["Runner", "Reporter", "Task", "content_key", "UnknownNameError"]
