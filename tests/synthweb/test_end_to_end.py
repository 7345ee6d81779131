"""`synthweb run` on the local sample web, then `report` and `sql` on what it stored."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from crawler.settings import SYNTHWEB_DETECTOR, SYNTHWEB_FAST_DETECTOR

pytestmark = pytest.mark.slow


def synthweb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthweb.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def db(sample_web, tmp_path_factory):
    dsn = f"chdb:///{tmp_path_factory.mktemp('e2e')}/store"
    result = synthweb("run", "--quiet", "--allow-private-networks", "--snapshot", "e2e", "--db", dsn, *sample_web.seeds)
    assert result.returncode == 0, result.stderr[-3000:]
    return dsn


def sql(db: str, query: str) -> list[dict]:
    result = synthweb("sql", "--db", db, "--format", "json", query)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def report(db: str, by: str) -> list[dict]:
    result = synthweb("report", "--db", db, "--by", by, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_shares_per_site_in_the_right_order_with_intervals(sample_web, db):
    rows = {r["domain"]: r for r in report(db, "domain")}
    news, blog, mixed = (rows[sample_web.site(name).address] for name in ("news", "blog", "mixed"))
    assert blog["share"] > mixed["share"] > news["share"]
    assert news["share"] < 0.3 and blog["share"] > 0.6
    for row in (news, blog, mixed):
        assert 0.0 <= row["ci_low"] <= row["share"] <= row["ci_high"] <= 1.0
        assert row["ci_high"] - row["ci_low"] < 0.8
    # documents = distinct contents among scored pages; the news site's exact duplicate counts once.
    for name, row in (("news", news), ("blog", blog), ("mixed", mixed)):
        address = sample_web.site(name).address
        scored = sql(
            db,
            f"SELECT count() AS pages, uniqExact(content_hash) AS distinct FROM pages "
            f"WHERE domain = '{address}' AND excluded = '' AND detector = '{SYNTHWEB_FAST_DETECTOR}'",
        )[0]
        assert row["documents"] == scored["distinct"] >= 18
        assert row["pages"] == scored["pages"] + row["excluded"]
        # Two-phase: sites this small are strong-scored in full (SYNTHWEB_STRONG_MIN_DOCUMENTS).
        assert row["strong_documents"] == row["documents"] and row["method"].startswith("two-phase")
    assert news["pages"] - news["excluded"] == news["documents"] + 1


def test_duplicates_are_counted_once(sample_web, db):
    news = sample_web.site("news")
    duplicate, original = next(iter(news.duplicate_of.items()))
    rows = sql(
        db,
        f"SELECT url, content_hash FROM pages WHERE url IN ('{news.url(duplicate)}', '{news.url(original)}') "
        f"AND detector = '{SYNTHWEB_DETECTOR}'",
    )
    assert len(rows) == 2 and rows[0]["content_hash"] == rows[1]["content_hash"]


def test_nothing_disallowed_is_stored(db):
    assert sql(db, "SELECT count() AS n FROM pages WHERE url LIKE '%/private/%'") == [{"n": 0}]
    assert sql(db, "SELECT count() AS n FROM skipped_pages WHERE url LIKE '%/private/%'") == [{"n": 0}]


def test_traps_are_bounded(db):
    calendar = sql(db, "SELECT count() AS n FROM pages WHERE url LIKE '%/calendar%'")[0]["n"]
    repeats = sql(db, "SELECT count() AS n FROM pages WHERE match(url, '/a/a/a/')")[0]["n"]
    assert 1 <= calendar <= 8 and repeats == 0


def test_big_binary_and_broken_pages_are_skipped_not_stored(sample_web, db):
    skipped = {r["url"]: r["reason"] for r in sql(db, "SELECT url, reason FROM skipped_pages")}
    blog, mixed = sample_web.site("blog"), sample_web.site("mixed")
    assert skipped[mixed.url("/big.html")] == "too_large"
    assert skipped[blog.url("/report.html")] == "binary"
    assert skipped[mixed.url("/missing.html")] == "http_404"
    assert skipped[mixed.url("/data.json")] == "not_html"
    assert "redirect_loop" in skipped.values()
    stored = {r["url"] for r in sql(db, "SELECT url FROM pages")}
    assert not {mixed.url("/big.html"), blog.url("/report.html")} & stored


def test_latin1_page_is_decoded(sample_web, db):
    url = sample_web.site("news").url("/latin1.html")
    text = sql(db, f"SELECT text FROM pages WHERE url = '{url}'")[0]["text"]
    assert "café" in text and "naïve" in text and "déjà vu" in text


def test_short_pages_are_stored_but_excluded(sample_web, db):
    url = sample_web.site("blog").url("/short.html")
    assert sql(db, f"SELECT excluded FROM pages WHERE url = '{url}'") == [{"excluded": "short"}]


def test_pages_carry_dates_language_and_detector(db):
    rows = sql(
        db,
        f"SELECT countIf(detector = '{SYNTHWEB_FAST_DETECTOR}') AS n, countIf(published IS NOT NULL) AS dated, "
        f"countIf(lang = 'en') AS en, countIf(detector = '{SYNTHWEB_FAST_DETECTOR}' AND excluded = '') AS kept, "
        f"countIf(detector = '{SYNTHWEB_DETECTOR}' AND p_synthetic BETWEEN 0 AND 1 AND inclusion = 1) AS scored "
        "FROM pages WHERE url LIKE '%/articles/%'",
    )[0]
    # Every article has a fast row; every one not excluded (sites this small are scored in full) a strong one
    # at probability 1.
    assert rows["n"] == 60 and rows["kept"] >= 55 and rows["scored"] == rows["kept"]
    assert rows["dated"] == rows["en"] == rows["n"] + rows["scored"]


def test_the_store_keeps_the_detectors_calibration_for_sql(db):
    from detectors.runtime import load_detector
    from synthweb.estimate import Calibration

    calibration = Calibration.from_dict(load_detector(SYNTHWEB_DETECTOR).calibration)
    tp, n_machine, fp, n_human = calibration.rates()
    [row] = sql(
        db,
        "SELECT detector, threshold_bin, tpr, fpr, hist_human, method FROM detector_calibrations FINAL "
        f"WHERE detector = '{SYNTHWEB_DETECTOR}'",
    )
    fast = sql(db, f"SELECT count() AS n FROM detector_calibrations WHERE detector = '{SYNTHWEB_FAST_DETECTOR}'")
    assert fast[0]["n"] >= 1  # the fast detector's too: SQL may correct its shares as well
    assert (row["detector"], row["threshold_bin"], row["method"]) == (
        SYNTHWEB_DETECTOR,
        calibration.threshold_bin,
        calibration.method,
    )
    assert row["tpr"] == pytest.approx(tp / n_machine) and row["fpr"] == pytest.approx(fp / n_human)
    assert row["hist_human"] == calibration.hist_human.tolist()


def test_report_by_year_and_formats(db):
    years = {r["year"]: r for r in report(db, "year")}
    assert {2019, 2020, 2021, 2024, 2025} <= set(years)
    assert years[2025]["share"] > years[2019]["share"]
    result = synthweb("report", "--db", db, "--by", "lang,month", "--format", "csv")
    assert result.returncode == 0
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert table and {"lang", "month", "pages", "documents", "share", "ci_low", "ci_high"} <= set(table[0])
    result = synthweb("report", "--db", db, "--by", "snapshot")
    assert result.returncode == 0 and "e2e" in result.stdout and "%" in result.stdout


def test_a_report_loads_no_model(db, tmp_path):
    # A report reads the store and the detectors' calibrations, never text: it works with no model built at all
    # (loading zeroshot's two language models made every report take ~10 s).
    env = {**os.environ, "SYNTHWEB_MODELS": str(tmp_path / "no-models")}
    args = [sys.executable, "-m", "synthweb.cli", "report", "--db", db, "--by", "domain", "--format", "json"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == report(db, "domain")


def test_an_uncalibrated_detector_stores_pages_and_says_why_there_is_no_share(sample_web, detector_copy, tmp_path):
    dsn = f"chdb:///{tmp_path}/store"
    seeds = sample_web.seeds[:1]
    args = ("run", "--quiet", "--allow-private-networks", "--max-pages-per-site", "3", "--db", dsn, *seeds)
    result = synthweb(*args, "--detector", detector_copy("uncalibrated", None))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: detector uncalibrated v1 is not calibrated" in result.stderr
    assert "pages stored, no share reported" in result.stderr and "Traceback" not in result.stderr
    assert sql(dsn, "SELECT count() AS n FROM pages WHERE detector = 'uncalibrated'")[0]["n"] >= 1
    # nothing to correct with (the fast detector's calibration is there: it scored every page)
    assert sql(dsn, "SELECT count() AS n FROM detector_calibrations WHERE detector = 'uncalibrated'")[0]["n"] == 0


def test_ctrl_c_stores_what_is_in_flight_counts_it_and_exits_130(tmp_path):
    import signal
    import time

    dsn = f"chdb:///{tmp_path}/store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthweb.cli", "run", "--sample-web", "--quiet", "--db", dsn, "--detector", "hashed"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert "sample web serving" in proc.stderr.readline()  # the crawl starts now; it takes ~10 s
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads(next(line for line in err.splitlines() if line.startswith("{")))
    assert summary["finish_reason"] == "shutdown" and summary["pages_stored"] > 0
    assert sql(dsn, "SELECT count() AS n FROM pages") == [{"n": summary["pages_stored"]}]  # the summary is the store
