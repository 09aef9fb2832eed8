"""Work inside a task (a plug-in's training loop) reports its steps through its context to the run's reporter."""

from bench.core.progress import Reporter
from bench.registry import METHODS
from bench.run.assembly import standalone_context
from bench.run.context import AdversaryContext


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


def test_without_a_reporter_progress_goes_nowhere():
    context = standalone_context(device="cpu")
    assert context.on_progress is None
    context.for_plugin([]).progress("fit", 1, 2)  # no display, no error
