"""Work inside a task (a plug-in's training loop) reports its steps through its context to the run's reporter."""

from bench.core.progress import Reporter
from bench.registry import METHODS
from bench.run.artifacts import ArtifactReader
from bench.run.assembly import standalone_context
from bench.run.context import AdversaryContext
from bench.run.runner import Runner
from bench.run.suites import get_suite


class StepsSeen(Reporter):
    def __init__(self):
        self.steps = []

    def step(self, label, done, total):
        self.steps.append((label, done, total))


def test_a_plugin_reports_steps_through_its_bound_context_and_an_adversary_context():
    seen = StepsSeen()
    context = standalone_context(device="cpu", reporter=seen)  # the embedded LFW subset
    method = METHODS.create("pgd").bind(context, seed=3)
    method.context.progress("fit", 0, 2)
    method.context.progress("fit", 1, 2)
    AdversaryContext(run=context.for_plugin([])).progress("train", 2, 2)
    assert seen.steps == [("fit", 0, 2), ("fit", 1, 2), ("train", 2, 2)]


def test_steps_report_zero_then_each_step_on_either_context():
    """``steps(label, total)``: what a training loop (an adversary's, a method's fit) calls before and after each step."""
    seen = StepsSeen()
    context = standalone_context(device="cpu", reporter=seen)
    step = AdversaryContext(run=context.for_plugin([])).steps("train", 2)
    assert seen.steps == [("train", 0, 2)]
    step()
    step()
    assert seen.steps == [("train", 0, 2), ("train", 1, 2), ("train", 2, 2)]


def test_without_a_reporter_progress_goes_nowhere():
    context = standalone_context(device="cpu")
    assert context.on_progress is None
    context.for_plugin([]).progress("fit", 1, 2)  # no display, no error


def test_a_fit_and_a_per_image_protector_report_their_steps(lfw_faces, sface):
    """Real faces and SFace: a universal fit reports its iterations, a per-image protector its batches x steps,
    each starting from 0 and ending at its total, with the method's name in the label."""
    seen = StepsSeen()
    context = standalone_context(device="cpu", reporter=seen)
    photos = lfw_faces["Tony_Blair"][:3]
    uap = METHODS.create("uap", iterations=3).bind(context, seed=0)
    uap.fit(photos, [sface], seed=0)
    pgd = METHODS.create("pgd", steps=2, batch_size=2).bind(context, seed=0)
    pgd.fit(photos, [sface], seed=0).protect(photos)
    fit = [s for s in seen.steps if s[0] == "uap fit"]
    protect = [s for s in seen.steps if s[0] == "pgd protect"]
    assert [d for _, d, _ in fit] == [0, 1, 2, 3] and {t for *_, t in fit} == {3}
    assert [d for _, d, _ in protect] == [0, 1, 2, 3, 4] and {t for *_, t in protect} == {4}  # 2 batches x 2 steps
    METHODS.create("pgd", steps=1).fit(photos, [sface], seed=0).protect(photos)  # unbound: nowhere, no error


def test_a_distributed_worker_shows_its_steps_and_records_none(tmp_path):
    """A Ray worker's runner reads the folder through an ArtifactReader (the driver is the store's one writer):
    the steps of its tasks reach its reporter, and no store is written."""
    seen, run_dir = StepsSeen(), tmp_path / "run"
    worker = Runner(get_suite("smoke"), run_dir, store=ArtifactReader(run_dir), reporter=seen)
    worker.step("pgd protect", 0, 2)
    assert seen.steps == [("pgd protect", 0, 2)] and not (run_dir / "store.sqlite").exists()
