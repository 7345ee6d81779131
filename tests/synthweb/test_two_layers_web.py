"""A local web crawled as two snapshots: near-duplicate clusters across domains, layers, and a transition.

Sites: `news` (human articles), `blog` (machine articles), `turn` (human articles in the first snapshot, machine
ones in the second) and `farm`, a content farm spinning news's articles: words replaced, sentences reordered,
its own boilerplate. The detector is `hashed` alone, so the test runs in seconds.
"""

import json
import random
import subprocess
import sys
from datetime import date

import pytest

from synthweb.sampleweb import SampleWeb, Site, _articles, load_texts

pytestmark = pytest.mark.slow
N = 12  # articles per site


def spun(text: str, seed: int) -> dict:
    rng = random.Random(seed)
    words = [("notable" if rng.random() < 0.05 else w) for w in text.split()]
    sentences = " ".join(words).split(". ")
    rng.shuffle(sentences)
    body = ". ".join(sentences) + " Sponsored content: find more trending stories from our partner network today."
    return {"text": body, "id": f"spun{seed}", "kind": "human", "model": "human"}


def synthweb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthweb.cli", *args], capture_output=True, text=True, timeout=300)


def as_json(*args: str):
    result = synthweb(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def crawled(tmp_path_factory):
    texts = load_texts()
    human = [t for t in texts if t["kind"] == "human"]
    machine = [t for t in texts if t["kind"] == "machine"]
    first, last = date(2024, 1, 1), date(2024, 12, 1)
    news = Site("news", "127.0.0.2", articles=_articles(human[:N], first, last))
    blog = Site("blog", "127.0.0.3", articles=_articles(machine[:N], first, last))
    turn = Site("turn", "127.0.0.4", articles=_articles(human[N : 2 * N], first, last))
    farm = Site("farm", "127.0.0.5", articles=_articles([spun(t["text"], i) for i, t in enumerate(human[:N])], first,
                                                          last))  # fmt: skip
    dsn = f"chdb:///{tmp_path_factory.mktemp('layers')}/store"
    with SampleWeb([news, blog, turn, farm]) as web:
        for snapshot in ("2026-01", "2026-02"):
            if snapshot == "2026-02":  # the site turns machine-written between the snapshots
                turn.articles = _articles(machine[N : 2 * N], first, last)
            result = synthweb("run", "--quiet", "--allow-private-networks", "--snapshot", snapshot, "--db", dsn,
                              "--detector", "hashed", *web.seeds)  # fmt: skip
            assert result.returncode == 0, result.stderr[-3000:]
            assert "near-duplicates:" in result.stderr
        return dsn, {s.name: s.address for s in web.sites}


def test_the_farm_clusters_with_the_site_it_copies(crawled):
    dsn, address = crawled
    rows = {(r["snapshot"], r["domain"]): r for r in as_json("report", "--db", dsn, "--by", "snapshot,domain",
                                                              "--format", "json", "--detector", "hashed")}  # fmt: skip
    for snapshot in ("2026-01", "2026-02"):
        assert rows[snapshot, address["farm"]]["near_duplicate_documents"] == N
        assert rows[snapshot, address["news"]]["near_duplicate_documents"] == N
        assert rows[snapshot, address["blog"]]["near_duplicate_documents"] == 0
        assert rows[snapshot, address["news"]]["clusters"] == N
    (counted,) = as_json("report", "--db", dsn, "--by", "snapshot", "--format", "json", "--detector", "hashed",
                         "--count", "clusters")[:1]  # fmt: skip
    assert counted["documents"] == counted["clusters"] == 3 * N  # news and its farm copies are one piece each
    clusters = as_json("sql", "--db", dsn, "--format", "json",
                       "SELECT cluster, uniqExact(domain) AS domains FROM page_clusters WHERE snapshot = '2026-01' "
                       "AND cluster_size > 1 GROUP BY cluster")  # fmt: skip
    assert len(clusters) == N and {c["domains"] for c in clusters} == {2}


def test_each_domain_gets_its_layer_per_snapshot(crawled):
    dsn, address = crawled
    entries = as_json("layers", "--db", dsn, "--domains", "--format", "json", "--detector", "hashed")
    layer = {(e["period"], e["domain"]): e["layer"] for e in entries}
    assert layer["2026-01", address["news"]] == layer["2026-02", address["news"]] == "human"
    assert layer["2026-01", address["blog"]] == layer["2026-02", address["blog"]] == "synthetic"
    assert layer["2026-01", address["turn"]] == "human" and layer["2026-02", address["turn"]] == "synthetic"
    summary = as_json("layers", "--db", dsn, "--format", "json", "--detector", "hashed")
    second = {s["layer"]: s for s in summary if s["period"] == "2026-02"}
    assert second["synthetic"]["domains"] == 2 and second["synthetic"]["domain_share"] == pytest.approx(0.5)
    assert second["synthetic"]["near_duplicate_rate"] == 0.0
    assert second["human"]["near_duplicate_rate"] == pytest.approx(1.0 if layer["2026-02", address["farm"]]
                                                                   == "human" else 0.5)  # fmt: skip


def test_the_transition_names_the_site_that_turned(crawled, tmp_path):
    dsn, address = crawled
    moves = as_json("layers", "--db", dsn, "--transitions", "--format", "json", "--detector", "hashed")
    assert {"from_period": "2026-01", "to_period": "2026-02", "from": "human", "to": "synthetic", "domains": 1,
            "examples": [address["turn"]]} in moves  # fmt: skip
    chart = tmp_path / "layers.html"
    result = synthweb("layers", "--db", dsn, "--detector", "hashed", "--chart", str(chart))
    assert result.returncode == 0, result.stderr
    page = chart.read_text()
    assert "<svg" in page and address["turn"] in page and "human → synthetic" in page


def test_dedup_on_a_deduplicated_store_has_nothing_new(crawled):
    dsn, _ = crawled
    runs = [json.loads(line) for line in synthweb("dedup", "--db", dsn).stdout.splitlines()]
    assert [r["snapshot"] for r in runs] == ["2026-01", "2026-02"] and all(r["skipped"] for r in runs)


def test_recorded_layers_are_what_the_command_printed(crawled):
    dsn, _ = crawled
    printed = as_json("layers", "--db", dsn, "--domains", "--format", "json", "--detector", "hashed", "--record")
    stored = as_json("sql", "--db", dsn, "--format", "json",
                     "SELECT period, domain, layer FROM domain_layers WHERE recorded = (SELECT max(recorded) "
                     "FROM domain_layers) ORDER BY period, domain")  # fmt: skip
    assert stored == [{"period": e["period"], "domain": e["domain"], "layer": e["layer"]} for e in printed]
    assert len(stored) == 8
