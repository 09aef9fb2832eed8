"""Every per-user measure of a protect task, declared once.

The runner computes each ``compute``-bearing metric on every protected batch and stores one row per user under
``row``; the leaderboard aggregates those rows over users into the entry field ``entry`` (``aggregate``), the
report and the Markdown/CSV exports show it with ``label`` and ``fmt``, and ``bench check`` compares it against
the baseline with ``tolerance`` in the metric's own ``direction``. Adding a metric is one ``METRICS.register``.

Protection success rates are declared here too (``PSRMeasure``): the evaluation tasks store one ``psr_<name>`` row
per user, target and adversary; the leaderboard turns the declared ones into cells with intervals, a worst case
and a mean, and every view (tables, report, reading, ``bench check``) reads them through these declarations. One
of them is the headline (``METRICS.headline()``, top-1 today): the leaderboard's primary score is its worst case.
Adding a PSR measure is one ``METRICS.register(PSRMeasure(...))``.

Plug-in packages add metrics through the ``cloakbench.metrics`` entry-point group (a module that registers on
import), like methods, targets and adversaries; the built-in metrics below register when this module imports.

Metrics from pyiqa (the optional ``[iqa]`` extra: ``pip install 'cloakbench[iqa]'``) register only when pyiqa
imports: MS-SSIM and GMSD, which pyiqa computes with no downloaded weights.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

import torch

# A ``fmt`` of its own (bench.report.formatting.number): three significant digits, never an exponent, for costs that
# span orders of magnitude (a universal mask applied in 0.24 ms, a per-image attack in 57,000 ms): ".0f" wrote 0.
SIGNIFICANT = "3 significant"

# protected, clean (N x 3 x H x W in [0, 1], the metric's region) -> one value per photo (N,)
PerPhoto = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Metric:
    row: str  # the result-row name a protect task stores (per user)
    entry: str  # the leaderboard field (aggregated over users)
    label: str  # column header
    group: str  # "quality" | "budget" | "cost" | "count"
    compares: str  # what it measures, for `bench list metrics` and the report
    higher_is_better: bool | None  # direction; None: no better or worse (a count)
    fmt: str  # format spec of the value, e.g. ".3f", or SIGNIFICANT
    tolerance: float | None = None  # `bench check`: absolute change allowed in the bad direction
    aggregate: str = "mean"  # over users: "mean" | "max" | "sum"
    compute: PerPhoto | None = None  # quality metrics: computed by the runner on every protected batch
    clamp_max: float | None = None  # e.g. PSNR of identical photos is +inf: shown as this value
    # what ``compute`` is given: "face" (the canvas face box), "canvas" (all of it) or "photo" (the whole photo
    # with the protected face put back, against the original photo: photo-space runs, docs/photos.md)
    region: str = "face"

    def __post_init__(self) -> None:
        if self.aggregate not in ("mean", "max", "sum"):
            raise ValueError(f"metric {self.row}: aggregate must be mean, max or sum, not {self.aggregate!r}")
        if self.region not in ("face", "canvas", "photo"):
            raise ValueError(f"metric {self.row}: region must be face, canvas or photo, not {self.region!r}")


PSR_PREFIX = "psr_"  # result rows of PSR measures: psr_<name>


@dataclass(frozen=True)
class PSRMeasure:
    """A protection success rate: the share of a user's protected queries the recogniser fails on, per target
    and adversary. The leaderboard keeps, per entry, the cell ``psr[target][adversary][name]`` (``aggregate``
    over users) with its 95% interval ``name_ci``, and over the cells the worst case (``worst_field``) and the
    mean (``mean_field``); for the headline also each user's value per cell (``per_user_field``), which ranks,
    ties and ``bench check`` resample."""

    name: str  # the cell key: "top1"; the evaluation row is "psr_top1"
    label: str  # "PSR@1"
    kind: str  # "identification" | "verification" | another scenario's kind (e.g. "linkage")
    compares: str  # what a success is, for `bench list metrics` and the report
    aggregate: str = "mean"  # over users
    higher_is_better: bool = True  # direction: a higher PSR is a better protection
    headline: bool = False  # the measure whose worst case is the leaderboard's primary score
    clean_accuracy: bool = False  # the clean-photo table reports 1 - this PSR of unprotected photos

    def __post_init__(self) -> None:
        if self.aggregate != "mean":
            raise ValueError(f"PSR measure {self.name}: only a mean over users has a bootstrap interval, not "
                             f"{self.aggregate!r}")

    @property
    def row(self) -> str:
        return PSR_PREFIX + self.name

    @property
    def worst_field(self) -> str:
        return f"psr_{self.name}_worst"

    @property
    def mean_field(self) -> str:
        return f"psr_{self.name}_mean"

    @property
    def ci_field(self) -> str:
        return f"psr_{self.name}_worst_ci"

    @property
    def per_user_field(self) -> str:
        return f"per_user_{self.name}"


class MetricRegistry:
    def __init__(self, group: str | None = None) -> None:
        self._metrics: dict[str, Metric] = {}
        self._psr: dict[str, PSRMeasure] = {}
        self.group = group  # entry-point group of plug-in metrics, loaded on first look-up
        self._loaded = group is None
        self.broken: dict[str, str] = {}  # plug-in module -> why it failed to import

    def register(self, metric: Metric | PSRMeasure) -> Metric | PSRMeasure:
        if isinstance(metric, PSRMeasure):
            if metric.name in self._psr:
                raise ValueError(f"PSR measure {metric.name!r} is already registered")
            if metric.headline and any(m.headline for m in self._psr.values()):
                raise ValueError(f"PSR measure {metric.name!r}: {self.headline().name!r} is already the headline")
            self._psr[metric.name] = metric
            return metric
        if metric.row in self._metrics:
            raise ValueError(f"metric {metric.row!r} is already registered")
        self._metrics[metric.row] = metric
        return metric

    def load_plugins(self) -> None:
        """Import the modules of the ``cloakbench.metrics`` entry points (each registers its metrics)."""
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.group):
            module = ep.value.split(":")[0]
            try:
                importlib.import_module(module)
            except Exception as exc:  # a broken plug-in is reported, not fatal
                self.broken[module] = f"{type(exc).__name__}: {exc}"[:500]

    def get(self, row: str) -> Metric:
        if row not in self._metrics:  # built-ins are looked up while this module imports: no plug-in load then
            self.load_plugins()
        try:
            return self._metrics[row]
        except KeyError:
            raise KeyError(f"unknown metric {row!r}; known: {', '.join(self._metrics)}") from None

    def all(self) -> list[Metric]:
        """Per-user measures of a protect task (quality, budget, cost, counts), in declaration order."""
        self.load_plugins()
        return list(self._metrics.values())

    def psr(self) -> list[PSRMeasure]:
        """The declared PSR measures, in declaration order."""
        self.load_plugins()
        return list(self._psr.values())

    def psr_measure(self, name: str) -> PSRMeasure:
        self.load_plugins()
        try:
            return self._psr[name]
        except KeyError:
            raise KeyError(f"unknown PSR measure {name!r}; known: {', '.join(self._psr)}") from None

    def headline(self) -> PSRMeasure:
        """The PSR measure whose worst case is the primary score (a built-in: read without loading plug-ins,
        so views may name its fields when they import)."""
        found = next((m for m in self._psr.values() if m.headline), None)
        if found is None:
            raise LookupError("no PSR measure is declared the headline")
        return found

    def quality(self) -> list[Metric]:
        """Metrics computed from protected and clean canvases (in declaration order)."""
        return [m for m in self.all() if m.compute is not None and m.region != "photo"]

    def photo_quality(self) -> list[Metric]:
        """Metrics computed from whole protected and original photos (photo-space runs)."""
        return [m for m in self.all() if m.compute is not None and m.region == "photo"]

    def checked(self) -> list[Metric]:
        """Metrics `bench check` gates on."""
        return [m for m in self.all() if m.tolerance is not None]


METRICS = MetricRegistry("cloakbench.metrics")

# What PSR@k means in each scenario (bench.run.suites.SCENARIOS): the evaluation tasks' ``psr_top1``/``psr_top5`` rows
# carry the scenario; the linkage scenarios' baseline is the clean photos linked alike (leaderboard ``clean``:
# ``<scenario>_top1_rate``; each linkage entry's ``clean_psr_top1``).
SCENARIO_PSR = {
    "probe": "share of protected query photos whose identity is not ranked first against a clean gallery",
    "gallery": "share of clean queries not matched to the user's enrolled protected photos",
    "linkage": "PSR-linkage: share of a user's protected posts whose nearest other post (among every user's) is "
               "not theirs",
    "linkage-anchored": "PSR-linkage with one clean photo of every user held beside the posts",
}


def _ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from bench.measures.quality import ssim

    return ssim(x, y)


def _psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from bench.measures.quality import psnr

    return psnr(x, y)


def _lpips(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    from bench.measures.lpips import get_lpips

    return get_lpips(x.device)(x, y).flatten()


METRICS.register(Metric("ssim", "ssim", "SSIM", "quality", "SSIM (Wang 2004, Gaussian 11x11) on the face box",
                        True, ".3f", tolerance=0.01, compute=_ssim))
METRICS.register(Metric("psnr", "psnr", "PSNR", "quality", "PSNR in dB on the face box", True, ".1f",
                        tolerance=0.5, compute=_psnr, clamp_max=100.0))
METRICS.register(Metric("lpips", "lpips", "LPIPS", "quality", "LPIPS (AlexNet, v0.1) on the face box", False,
                        ".3f", tolerance=0.01, compute=_lpips))
for _base in ("ssim", "psnr", "lpips"):  # the same measures on whole photos, where a photo-space run made them
    _on_face = METRICS.get(_base)
    METRICS.register(Metric(f"photo_{_base}", f"photo_{_base}", f"photo {_on_face.label}", "quality",
                            _on_face.compares.replace("on the face box", "on the whole photo (protected face put "
                                                      "back, before the attacker's JPEG) against the original"),
                            _on_face.higher_is_better, _on_face.fmt, compute=_on_face.compute,
                            clamp_max=_on_face.clamp_max, region="photo"))
METRICS.register(Metric("linf", "linf_max", "L-inf", "budget", "largest |protected - clean| on the 0..1 scale",
                        False, ".4f", aggregate="max"))
METRICS.register(Metric("fit_s", "fit_s_per_user", "fit s/user", "cost", "seconds to fit one user's protector",
                        False, SIGNIFICANT))
METRICS.register(Metric("protect_ms_per_photo", "protect_ms_per_photo", "ms/photo", "cost",
                        "milliseconds to protect one photo", False, SIGNIFICANT))
METRICS.register(Metric("probes", "probes", "probes", "count", "protected query photos", None, "d",
                        aggregate="sum"))

METRICS.register(PSRMeasure("top1", "PSR@1", "identification", "the user's identity is not ranked first against "
                            "the gallery", headline=True, clean_accuracy=True))
METRICS.register(PSRMeasure("top5", "PSR@5", "identification", "the user's identity is not among the first five",
                            clean_accuracy=True))
METRICS.register(PSRMeasure("top10", "PSR@10", "identification", "the user's identity is not among the first ten "
                            "(OPOM's pairs protocol)"))
METRICS.register(PSRMeasure("far1e-2", "PSR@FAR1e-2", "verification", "the match score stays below the threshold "
                            "of the target at 1% false accepts (calibrated targets)"))
METRICS.register(PSRMeasure("far1e-3", "PSR@FAR1e-3", "verification", "the match score stays below the threshold "
                            "of the target at 0.1% false accepts (calibrated targets)"))


def register_pyiqa(registry: MetricRegistry) -> list[Metric]:
    """Register pyiqa's weight-free metrics when pyiqa imports (the ``[iqa]`` extra); otherwise none."""
    try:
        pyiqa = importlib.import_module("pyiqa")
    except ImportError:
        return []
    models: dict[tuple[str, str], Callable] = {}

    def pyiqa_metric(name: str) -> PerPhoto:
        def compute(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            key = (name, str(x.device))
            if key not in models:
                models[key] = pyiqa.create_metric(name, device=x.device, as_loss=False)
            return models[key](x, y).flatten().to(x.dtype)

        return compute

    declared = [
        # five scales of an 11 x 11 window need 161+ pixels: the 140-pixel face box is too small
        Metric("ms_ssim", "ms_ssim", "MS-SSIM", "quality", "MS-SSIM (Wang 2003; pyiqa, Y channel) on the whole "
               "canvas", True, ".3f", tolerance=0.01, compute=pyiqa_metric("ms_ssim"), region="canvas"),
        Metric("gmsd", "gmsd", "GMSD", "quality", "GMSD (Xue 2014; pyiqa) on the face box", False, ".4f",
               tolerance=0.005, compute=pyiqa_metric("gmsd")),
    ]
    return [registry.register(m) for m in declared]


register_pyiqa(METRICS)
