"""Near-duplicate clusters of a store's snapshots: signatures, LSH buckets in SQL, clusters back in the store.

`dedup(store)` works per snapshot and never holds a snapshot's signatures in one process's memory:
1. documents without a signature are read in chunks, signed (synthweb.neardup) and written to
   `minhash_signatures`;
2. ClickHouse cuts each signature into LSH bands and groups by band value (`_BUCKETS`): only buckets of two
   or more documents come back, so memory grows with the near-duplicates, not with the snapshot;
3. the candidates' signatures are read and verified pairwise within each bucket (neardup.Clusters);
4. every document of a cluster of two or more, and every content stored on two or more domains, gets a
   `near_duplicates` row under this run; `dedup_runs` records the run. Readers take the latest run.
The embedded `synthweb run` calls it at the end; `synthweb dedup` runs it on any store (archives, backfills,
a scheduled job beside a distributed deployment).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np

from synthweb import neardup
from synthweb.store import Store

log = logging.getLogger(__name__)

SIGN_CHUNK = 2000  # documents read, signed and written per round
FETCH_CHUNK = 5000  # candidate signatures read per query


def signature_params() -> str:
    """How signatures are made; stored beside them so a store never compares signatures made differently."""
    from importlib.metadata import version

    return (
        f"words{neardup.SHINGLE}-perm{neardup.NUM_PERM}-seed{neardup.SEED}-min{neardup.MIN_WORDS}"
        f"-rensa{version('rensa')}"
    )


@dataclass
class DedupRun:
    snapshot: str
    documents: int
    signed: int
    newly_signed: int
    clusters: int
    near_duplicate_documents: int
    seconds: float
    skipped: bool = False  # up to date: no new documents since the last run with these parameters

    def to_dict(self) -> dict:
        return asdict(self)


def dedup(
    store: Store, snapshots: list[str] | None = None, threshold: float = neardup.THRESHOLD, force: bool = False
) -> list[DedupRun]:
    """Cluster the near-duplicates of each snapshot (default: every snapshot in `pages`).

    A snapshot whose latest run saw as many documents, with the same parameters and threshold, is skipped
    unless `force`.
    """
    if snapshots is None:
        _, rows = store.query("SELECT DISTINCT snapshot FROM pages ORDER BY snapshot")
        snapshots = [r[0] for r in rows]
    return [dedup_snapshot(store, s, threshold, force) for s in snapshots]


def dedup_snapshot(store: Store, snapshot: str, threshold: float = neardup.THRESHOLD, force: bool = False) -> DedupRun:
    """Sign, bucket, verify and record the near-duplicate clusters of one snapshot (see the module docstring)."""
    start = time.perf_counter()
    params = {"s": snapshot, "p": signature_params(), "m": neardup.MIN_WORDS, "t": threshold}
    _, rows = store.query("SELECT uniqExact(content_hash) FROM pages WHERE snapshot = {s:String}", params)
    documents = int(rows[0][0])
    if not force:
        _, last = store.query(
            "SELECT documents, clusters, near_duplicate_documents, signed FROM dedup_runs WHERE snapshot = {s:String} "
            "AND params = {p:String} AND abs(threshold - {t:Float32}) < 1e-6 ORDER BY run DESC LIMIT 1",
            params,
        )
        if last and int(last[0][0]) == documents:
            clusters, near, signed = (int(v) for v in last[0][1:])
            return DedupRun(snapshot, documents, signed, 0, clusters, near, time.perf_counter() - start, skipped=True)
    newly = _sign_missing(store, params)
    buckets = _candidate_buckets(store, params)
    signatures = _signatures(store, params, sorted({d for docs in buckets for d in docs}))
    clusters = neardup.Clusters(threshold)
    for docs in buckets:
        clusters.add_bucket(docs, signatures)
    groups = clusters.groups()
    rows_out = _cluster_rows(store, params, groups)
    run = datetime.now(UTC)
    if rows_out:
        columns = ["snapshot", "run", "content_hash", "cluster", "cluster_size", "cluster_domains"]
        store.insert("near_duplicates", [[snapshot, run, *r] for r in rows_out], columns)
    _, signed_rows = store.query(
        "SELECT count() FROM (SELECT content_hash FROM minhash_signatures WHERE snapshot = {s:String} "
        "AND params = {p:String} AND length(signature) > 0 GROUP BY content_hash)",
        params,
    )
    near = sum(1 for r in rows_out if r[3] > 1)
    result = DedupRun(
        snapshot, documents, int(signed_rows[0][0]), newly, len(groups), near, time.perf_counter() - start
    )
    store.insert(
        "dedup_runs",
        [[snapshot, run, params["p"], threshold, documents, result.signed, result.clusters, near, result.seconds]],
        ["snapshot", "run", "params", "threshold", "documents", "signed", "clusters", "near_duplicate_documents",
         "seconds"],
    )  # fmt: skip
    log.info("dedup %s: %s", snapshot, result)
    return result


def _sign_missing(store: Store, params: dict) -> int:
    """Sign the snapshot's documents that have no signature yet, a chunk at a time; return how many."""
    done = 0
    while True:
        _, rows = store.query(
            "SELECT content_hash, any(text) FROM pages WHERE snapshot = {s:String} AND word_count >= {m:UInt32} "
            "AND content_hash NOT IN (SELECT content_hash FROM minhash_signatures WHERE snapshot = {s:String} "
            f"AND params = {{p:String}}) GROUP BY content_hash ORDER BY content_hash LIMIT {SIGN_CHUNK}",
            params,
        )
        if not rows:
            return done
        out = []
        for content_hash, text in rows:
            sig = neardup.signature(text)
            # An empty signature marks a text too short to sign, so the next round does not read it again.
            out.append([params["s"], params["p"], content_hash, [] if sig is None else sig.tolist()])
        store.insert("minhash_signatures", out, ["snapshot", "params", "content_hash", "signature"])
        done += len(out)


# LSH: a band is ROWS consecutive signature values; documents with one equal band are candidates.
_BUCKETS = (
    "SELECT groupArray(content_hash) FROM ("
    " SELECT content_hash, band, cityHash64(band, arraySlice(sig, band * {rows:UInt32} + 1, {rows:UInt32}))"
    " AS bucket FROM (SELECT content_hash, any(signature) AS sig FROM minhash_signatures"
    " WHERE snapshot = {s:String} AND params = {p:String} AND length(signature) > 0 GROUP BY content_hash)"
    " ARRAY JOIN range({bands:UInt32}) AS band"
    ") GROUP BY band, bucket HAVING count() > 1"
)


def _candidate_buckets(store: Store, params: dict) -> list[list[str]]:
    _, rows = store.query(_BUCKETS, {**params, "rows": neardup.ROWS, "bands": neardup.BANDS})
    return [list(r[0]) for r in rows]


def _signatures(store: Store, params: dict, docs: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for i in range(0, len(docs), FETCH_CHUNK):
        _, rows = store.query(
            "SELECT content_hash, any(signature) FROM minhash_signatures WHERE snapshot = {s:String} "
            "AND params = {p:String} AND content_hash IN {c:Array(String)} GROUP BY content_hash",
            {**params, "c": docs[i : i + FETCH_CHUNK]},
        )
        out.update({h: np.asarray(sig, dtype=np.uint32) for h, sig in rows})
    return out


def _cluster_rows(store: Store, params: dict, groups: dict[str, list[str]]) -> list[list]:
    """[content_hash, cluster, cluster_size, cluster_domains] for clustered documents and for contents stored
    on two or more domains."""
    members = sorted({d for docs in groups.values() for d in docs})
    domains: dict[str, set[str]] = {}
    for i in range(0, len(members), FETCH_CHUNK):
        _, rows = store.query(
            "SELECT content_hash, groupUniqArray(domain) FROM pages WHERE snapshot = {s:String} "
            "AND content_hash IN {c:Array(String)} GROUP BY content_hash",
            {**params, "c": members[i : i + FETCH_CHUNK]},
        )
        domains.update({h: set(d) for h, d in rows})
    out = []
    for cluster, docs in groups.items():
        spread = len(set().union(*(domains.get(d, set()) for d in docs)))
        out += [[d, cluster, len(docs), spread] for d in docs]
    # Exact copies on several domains are one document, so no cluster of two: they get a row of their own.
    _, copies = store.query(
        "SELECT content_hash, uniqExact(domain) AS n FROM pages WHERE snapshot = {s:String} "
        "GROUP BY content_hash HAVING n > 1",
        params,
    )
    clustered = set(members)
    out += [[h, h, 1, int(n)] for h, n in copies if h not in clustered]
    return out
