"""The stage contract: a batch through a list of stages, a dedup token for those that take one, timings."""

import time

from synthweb.pipeline import Page, Pipeline, Stage


class Slow(Stage):
    name = "slow"

    def run(self, pages):
        for page in pages:
            time.sleep(0.01)
            page.title += "slow;"
            yield page


class Tokened(Stage):
    name = "tokened"

    def __init__(self):
        self.tokens = []

    def run(self, pages, dedup_token=None):
        self.tokens.append(dedup_token)
        yield from pages


def test_dedup_token_reaches_only_stages_that_take_it_and_embedded_calls_still_work():
    tokened = Tokened()
    pipeline = Pipeline([Slow(), tokened])
    pages = pipeline.process([Page(url="https://a.example/1")], dedup_token="t/0:1-1:abc")
    assert pages[0].title == "slow;"
    pipeline.process([Page(url="https://a.example/2")])  # the embedded path passes no token
    assert tokened.tokens == ["t/0:1-1:abc", None]


def test_timings_are_per_stage_without_the_stages_before():
    timings = {}
    Pipeline([Slow(), Tokened()]).process([Page(url=f"https://a.example/{i}") for i in range(5)], timings=timings)
    assert set(timings) == {"slow", "tokened"}
    assert timings["slow"] >= 0.05 and timings["tokened"] < timings["slow"]


class FlakyStore:
    """Fails every call until `back_after` calls were made; the item 'bad' always fails."""

    def __init__(self, back_after: int):
        self.calls, self.back_after, self.stored = 0, back_after, []

    def __call__(self, items):
        self.calls += 1
        if self.calls <= self.back_after or "bad" in items:
            raise OSError("store refused the write")
        self.stored.extend(items)


def test_a_store_back_midway_through_the_one_by_one_tries_loses_nothing_but_the_bad_item():
    from synthweb.pipeline import run_with_retries

    # 1 batch try + 1 retry fail, then the first 2 of the one-by-one tries fail too: the store is back after.
    store = FlakyStore(back_after=4)
    failed = run_with_retries(store, ["a", "b", "bad", "c"], delays=(0.0,), sleep=lambda s: None)
    assert [item for item, _ in failed] == ["bad"]
    assert sorted(store.stored) == ["a", "b", "c"]
