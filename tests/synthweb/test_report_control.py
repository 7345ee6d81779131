"""`synthweb report`: --method, exclusions by reason, the pre-LLM control group and --fpr-from control.

Pages go into a tmp chDB store through the Store API in a child process, and each report runs as
its own `synthweb` process: chDB allows one on-disk store path per process.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

FILL = textwrap.dedent(
    """
    import json, sys
    from datetime import date
    from synthweb.pipeline import Page
    from synthweb.store import Store, StoreStage

    store = Store(sys.argv[1])
    store.migrate()
    pages = [Page(**{**p, "published": date.fromisoformat(p["published"])}) for p in json.load(sys.stdin)]
    list(StoreStage(store).run(pages))
    """
)


def synthweb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthweb.cli", *args], capture_output=True, text=True, timeout=120)


def lab_like_scores(n: int) -> list[float]:
    """Scores spread like the lexical detector's human validation texts (inverse CDF at even quantiles)."""
    from detectors.runtime import load_detector

    hist = np.asarray(load_detector("lexical").calibration["hist_human"], dtype=float)
    cdf = np.cumsum(hist) / hist.sum()
    bins = np.searchsorted(cdf, (np.arange(n) + 0.5) / n)
    return [float((b + 0.5) / 50) for b in bins]


def page(domain: str, i: int, score: float, published: str, **extra) -> dict:
    return dict(
        url=f"http://{domain}/{i}", snapshot="s1", host=domain, domain=domain, tld="example", lang="en",
        text="word " * 80, content_hash=f"{domain}-{i}", word_count=80, detector="lexical", detector_version="1",
        p_synthetic=score, published=published, **extra,
    )  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def lexical_by_default():
    """The stores here hold lexical scores: reports must use that detector, not the configured default."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYNTHWEB_DETECTOR", "lexical")
        yield


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    dsn = f"chdb:///{tmp_path_factory.mktemp('control')}/db"
    # Half the humans of "drift.example" score like machines; the other half like the lab's humans.
    high = [0.7 + 0.25 * i / 75 for i in range(75)] + lab_like_scores(75)
    pages = [page("drift.example", i, s, "2019-06-01") for i, s in enumerate(high)]
    pages += [page("drift.example", 1000 + i, s, "2024-03-01") for i, s in enumerate(high[::2])]
    pages += [page("steady.example", i, s, "2020-01-01") for i, s in enumerate(lab_like_scores(150))]
    pages += [page("new.example", i, s, "2024-03-01") for i, s in enumerate(lab_like_scores(20))]  # no control
    pages += [page("steady.example", 1000 + i, 0.3, "2024-03-01", excluded="short") for i in range(3)]
    pages += [page("steady.example", 2000 + i, 0.3, "2024-03-01", excluded="unsupported_lang") for i in range(2)]
    fill = subprocess.run([sys.executable, "-c", FILL, dsn], input=json.dumps(pages), capture_output=True, text=True)
    assert fill.returncode == 0, fill.stderr
    return dsn


def report(db: str, *args: str) -> list[dict]:
    result = synthweb("report", "--db", db, "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_control_flags_the_drifting_stratum(db):
    rows = {r["domain"]: r for r in report(db, "--control")}
    drift, steady = rows["drift.example"], rows["steady.example"]
    assert drift["control_documents"] == 150 and drift["control_rate"] > 0.55 and drift["drift"] is True
    assert steady["control_documents"] == 150 and steady["drift"] is False
    assert steady["ci_low"] <= steady["lab_fpr"] <= steady["ci_high"]
    assert steady["lab_fpr"] == pytest.approx(0.2585, abs=1e-3)


def test_fpr_from_control_corrects_the_drifting_stratum(db):
    lab = {r["domain"]: r for r in report(db, "--by", "domain", "--method", "acc")}
    control = {r["domain"]: r for r in report(db, "--by", "domain", "--method", "acc", "--fpr-from", "control")}
    # Recent pages of drift.example look like its pre-LLM pages: the lab FPR calls them machine-written.
    assert lab["drift.example"]["share"] > 0.5
    assert control["drift.example"]["share"] < 0.05 and control["drift.example"]["fpr_source"] == "control"
    assert control["drift.example"]["ci_low"] <= 1e-9
    assert control["steady.example"]["fpr_source"] == "control" and control["new.example"]["fpr_source"] == "lab"
    (overall,) = report(db, "--method", "acc", "--fpr-from", "control")
    assert overall["fpr_source"] == "control+lab"  # a group spanning strata mixes their references
    (overall_lab,) = report(db, "--method", "acc")
    assert overall["share"] < overall_lab["share"] - 0.2
    assert abs(control["steady.example"]["share"] - lab["steady.example"]["share"]) < 0.1
    # Every row says how well a mixture of its reference classes fits it (75 drifting pages are too few
    # to call a misfit once the lab's clustering is allowed for; tests/synthweb/test_quantify.py has one).
    assert all(0 < row["fit_p"] <= 1 for row in [*lab.values(), *control.values()])
    assert lab["steady.example"]["fit_p"] > 0.5


def test_the_table_marks_misfits():
    from synthweb.report import _cell

    assert (_cell("fit_p", 0.012), _cell("fit_p", 0.5), _cell("fit_p", None)) == ("0.012 MISFIT", "0.500", "—")


def test_a_stratum_whose_humans_look_like_machines_gets_no_share():
    from synthweb.estimate import Calibration, estimate_histogram

    calibration = Calibration(4, np.array([40, 30, 20, 10]), np.array([5, 15, 30, 50]), 0.5)
    estimate = estimate_histogram([1, 1, 4, 4], calibration, "acc", human=(np.array([0, 0, 50, 50]), 100))
    assert estimate.share is None and "cannot tell" in estimate.note and estimate.naive == 0.8


def test_report_counts_exclusions_by_reason(db):
    rows = {r["domain"]: r for r in report(db, "--by", "domain")}
    assert rows["steady.example"]["excluded"] == 5
    assert rows["steady.example"]["excluded_by"] == {"short": 3, "unsupported_lang": 2}
    assert rows["drift.example"]["excluded_by"] == {}
    table = synthweb("report", "--db", db, "--by", "domain")
    assert "5 (short 3, unsupported_lang 2)" in table.stdout


EVERY_METHOD = textwrap.dedent(
    """
    import json, sys
    from detectors.runtime import load_detector
    from synthweb.report import share_report
    from synthweb.store import Store

    store, detector = Store(sys.argv[1]), load_detector("lexical")
    print(json.dumps({m: share_report(store, detector, [], method=m)[0] for m in sys.argv[2:]}))
    """
)


def test_every_method_runs_on_the_aggregates(db):
    methods = ["cc", "acc", "pacc", "em", "hdy"]
    result = subprocess.run(
        [sys.executable, "-c", EVERY_METHOD, db, *methods], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    for method in methods:
        row = rows[method]
        assert row["method"] == method and 0.0 <= row["ci_low"] <= row["share"] <= row["ci_high"] <= 1.0
        assert row["naive_share"] == pytest.approx(rows["cc"]["share"])
    assert len({round(rows[m]["share"], 6) for m in methods}) > 2  # the methods do differ


def test_default_method_and_unknown_method(db, tmp_path):
    from synthweb.estimate import DEFAULT_METHOD

    (row,) = report(db)
    assert row["method"] == DEFAULT_METHOD
    result = synthweb("report", "--db", db, "--method", "median")
    assert result.returncode == 2 and "invalid choice" in result.stderr
