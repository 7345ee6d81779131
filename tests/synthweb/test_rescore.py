"""Re-scoring stored text with a second detector, comparing detectors in reports, and charts from the store."""

from __future__ import annotations

import json
import shutil

import pytest

from detectors.runtime import SHIPPED
from synthweb.sampleweb import article_html, build_sites
from tests.crawler.test_warc import sql, synthweb
from tests.support.crawl import write_warc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A store holding 2019-2021 human and 2024-2025 machine articles from a WARC, and a second detector."""
    tmp = tmp_path_factory.mktemp("rescore")
    news, blog, _ = build_sites()
    records = [
        {"url": f"http://{name}.example.org{a.path}", "body": article_html(a), "date": "2025-07-01T00:00:00Z"}
        for name, site in (("news", news), ("blog", blog))
        for a in site.articles[:8]
    ]
    warc = write_warc(tmp / "history.warc.gz", records)
    second = tmp / "detectors" / "lexical-next"
    shutil.copytree(SHIPPED / "lexical", second)
    manifest = json.loads((second / "manifest.json").read_text())
    manifest.update(name="lexical-next", version="2")
    (second / "manifest.json").write_text(json.dumps(manifest))
    db = f"chdb:///{tmp}/store"
    # Ingested with lexical (fast, and the baseline the second version is compared with).
    # One detector per row set (two-phase scoring has tests of its own: tests/synthweb/test_two_phase.py).
    env = {
        "SYNTHWEB_DETECTORS_PATH": str(tmp / "detectors"),
        "SYNTHWEB_DETECTOR": "lexical",
        "SYNTHWEB_FAST_DETECTOR": "",
    }
    result = synthweb("ingest", "warc", "--quiet", "--db", db, "--snapshot", "hist", str(warc), env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return {"db": db, "env": env, "tmp": tmp}


def rescore(history, *args: str) -> dict:
    result = synthweb("rescore", "--quiet", "--db", history["db"], *args, env=history["env"])
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stderr.strip().splitlines()[-1])


def test_rescore_adds_rows_beside_the_old_once(history):
    first = rescore(history, "--detector", "lexical-next", "--where", "host = 'news.example.org'")
    assert first == {"detector": "lexical-next", "version": "2", "sample": 1.0, "pending": 8, "rescored": 8,
                     "excluded": 0, "raised": 0}  # fmt: skip
    rest = rescore(history, "--detector", "lexical-next")
    assert rest["pending"] == 8 and rest["rescored"] == 8  # only the blog pages were left
    assert rescore(history, "--detector", "lexical-next")["rescored"] == 0  # idempotent
    bad = synthweb("rescore", "--db", history["db"], "--where", "no_such_column = 1", env=history["env"])
    assert bad.returncode == 2 and "bad --where" in bad.stderr
    for escape in ("host = 'news.example.org') OR (1=1", "1=1 -- AND NOT", "1; DROP TABLE pages"):
        refused = synthweb("rescore", "--db", history["db"], "--detector", "lexical-next", "--where", escape,
                           env=history["env"])  # fmt: skip
        assert refused.returncode == 2 and "bad --where" in refused.stderr, refused.stderr
        assert refused.stderr.strip().count("\n") == 0
    [rows] = sql(
        history["db"],
        "SELECT detector, detector_version AS v, count() AS n, uniqExact(url) AS urls, "
        "countIf(date_source = 'metadata') AS dated FROM pages GROUP BY detector, v ORDER BY detector",
    )
    assert rows == [
        {"detector": "lexical", "v": "1", "n": 16, "urls": 16, "dated": 16},
        {"detector": "lexical-next", "v": "2", "n": 16, "urls": 16, "dated": 16},
    ]
    # Both versions' calibrations are in the store (ingest's store stage, rescore), for SQL's shares.
    [calibrations] = sql(
        history["db"], "SELECT detector, detector_version AS v FROM detector_calibrations FINAL ORDER BY detector"
    )
    assert calibrations == [{"detector": "lexical", "v": "1"}, {"detector": "lexical-next", "v": "2"}]


def test_report_compares_detectors_by_year_and_charts(history):
    rescore(history, "--detector", "lexical-next")
    args = ["report", "--db", history["db"], "--detector", "lexical,lexical-next", "--by", "year", "--format", "json"]
    result = synthweb(*args, env=history["env"])
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {(r["detector"], r["version"]) for r in rows} == {("lexical", "1"), ("lexical-next", "2")}
    by_year = {(r["detector"], r["year"]): r for r in rows}
    for name in ("lexical", "lexical-next"):  # the same model: the same shares, old text late, new text early
        assert by_year[(name, 2024)]["share"] > by_year[(name, 2019)]["share"]
    assert by_year[("lexical", 2019)]["share"] == by_year[("lexical-next", 2019)]["share"]
    png, page = history["tmp"] / "share.png", history["tmp"] / "share.html"
    for path, extra in ((png, ["--by", "domain"]), (page, ["--detector", "lexical,lexical-next"])):
        result = synthweb("report", "--db", history["db"], "--chart", str(path), *extra, env=history["env"])
        assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    text = page.read_text()
    assert "<svg" in text and "<script" not in text and "lexical-next v2" in text and "2024-" in text
    bad = synthweb("report", "--db", history["db"], "--chart", str(history["tmp"] / "x.gif"), env=history["env"])
    assert bad.returncode == 2 and ".png, .svg or .html" in bad.stderr
