"""The one driver: batches in order through the pipeline, hooks after processing, one tally and display."""

from synthweb.driver import Batch, Progress, drive
from synthweb.pipeline import Page, Pipeline, Stage


class Marking(Stage):
    """Skips pages whose URL ends in /skip, excludes those ending in /short; records the dedup tokens."""

    name = "marking"

    def __init__(self):
        self.tokens = []

    def run(self, pages, dedup_token=None):
        self.tokens.append(dedup_token)
        for page in pages:
            page.skip = "bad" if page.url.endswith("/skip") else ""
            page.excluded = "short" if page.url.endswith("/short") else ""
            yield page


def test_drive_processes_in_order_calls_done_after_and_tallies(capsys):
    stage = Marking()
    events = []
    urls = [["https://a.example/1", "https://a.example/skip"], ["https://a.example/short"]]

    def batches(progress):
        task = progress.task("source", total=2)
        for i, group in enumerate(urls):
            events.append(f"yield {i}")
            done = lambda out, i=i: events.append(f"done {i}: {len(out)} pages, stage saw {len(stage.tokens)}")  # noqa: E731
            yield Batch([Page(url=u) for u in group], token=f"t{i}", task=task, position=i + 1, done=done)

    with Progress(True) as progress:
        tally = drive(batches(progress), Pipeline([stage]), progress)
    assert stage.tokens == ["t0", "t1"]
    assert events == ["yield 0", "done 0: 2 pages, stage saw 1", "yield 1", "done 1: 1 pages, stage saw 2"]
    assert (tally.pages, tally.kept, tally.excluded, dict(tally.skipped)) == (3, 2, 1, {"bad": 1})
    assert progress.tallies[0].pages == 3 and progress.progress.tasks[0].completed == 2


def test_a_hidden_progress_draws_nothing_and_the_tally_still_counts(capsys):
    progress = Progress(False)
    with progress:
        tally = drive([Batch([Page(url="https://b.example/")], task=progress.task("x"))], Pipeline([]), progress)
    assert tally.pages == 1 and tally.kept == 1
    assert capsys.readouterr().err == ""
