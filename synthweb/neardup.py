"""Near-duplicate documents: MinHash signatures of word shingles, LSH bands, and clusters.

A document's signature is `NUM_PERM` MinHash values (rensa's RMinHash, seeded, so every process and
every run computes the same numbers) over its word `SHINGLE`-grams. Two documents whose signatures agree
in all `ROWS` values of any of the `BANDS` bands become candidates; a candidate pair joins one cluster when
the share of agreeing values (an unbiased estimate of their Jaccard similarity) is at least `THRESHOLD`.
The parameters were chosen by `bench/neardup_bench.py` (docs/near-duplicates.md). The store side (bands as
ClickHouse rows, the GROUP BY that finds candidates) is synthweb.dedup; this module is pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

SHINGLE = 1  # words per shingle: word sets (bench/neardup_bench.py: best recall at equal precision)
NUM_PERM = 128
BANDS = 32  # BANDS * ROWS <= NUM_PERM
ROWS = 4
THRESHOLD = 0.6  # estimated Jaccard similarity of two documents in one cluster (0.8 misses spun copies)
SEED = 20261202  # fixed forever: signatures stored in a store are compared with ones computed later
MIN_WORDS = 20  # shorter texts get no signature: a few shared words are no evidence of copying

_WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, size: int = SHINGLE) -> list[str]:
    """The text's distinct word `size`-grams (lowercased); a text shorter than `size` words is one shingle."""
    words = _WORD.findall(text.lower())
    if len(words) <= size:
        return [" ".join(words)] if words else []
    return list({" ".join(words[i : i + size]) for i in range(len(words) - size + 1)})


def signature(text: str, size: int = SHINGLE, num_perm: int = NUM_PERM) -> np.ndarray | None:
    """The MinHash signature (uint32[num_perm]) of the text's shingles; None for a text with fewer than MIN_WORDS
    words."""
    from rensa import RMinHash

    if len(_WORD.findall(text)) < MIN_WORDS:
        return None
    minhash = RMinHash(num_perm=num_perm, seed=SEED)
    minhash.update(shingles(text, size))
    return np.asarray(minhash.digest(), dtype=np.uint32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two documents: the share of their signatures' values that agree."""
    return float(np.mean(a == b))


def band_keys(sig: np.ndarray, bands: int = BANDS, rows: int = ROWS) -> list[int]:
    """One 64-bit key per band, for in-memory clustering (the store computes its own keys in SQL)."""
    import hashlib

    out = []
    for band in range(bands):
        chunk = sig[band * rows : (band + 1) * rows].astype("<u4").tobytes()
        out.append(int.from_bytes(hashlib.blake2b(band.to_bytes(2, "little") + chunk, digest_size=8).digest()))
    return out


def candidate_probability(jaccard: float, bands: int = BANDS, rows: int = ROWS) -> float:
    """Probability that two documents of this Jaccard similarity share at least one band."""
    return 1.0 - (1.0 - jaccard**rows) ** bands


class Clusters:
    """Union-find over documents, fed bucket by bucket with verified candidate pairs."""

    def __init__(self, threshold: float = THRESHOLD):
        self.threshold = threshold
        self.parent: dict[str, str] = {}
        self.compared = 0

    def find(self, doc: str) -> str:
        parent = self.parent.setdefault(doc, doc)
        while parent != doc:
            self.parent[doc] = self.parent.setdefault(parent, parent)  # path halving
            doc, parent = parent, self.parent[parent]
        return doc

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller id is the root, so a cluster's id is its smallest member's
            self.parent[max(ra, rb)] = min(ra, rb)

    def add_bucket(self, docs: Sequence[str], signatures: dict[str, np.ndarray]) -> None:
        """Join the bucket's documents that are similar enough.

        Leader clustering: each document is compared with the bucket's leaders so far and joins the first
        similar one, else becomes a leader, so a bucket of n copies costs n comparisons, not n^2/2.
        """
        leaders: list[str] = []
        for doc in sorted(docs):
            sig = signatures.get(doc)
            if sig is None:
                continue
            for leader in leaders:
                self.compared += 1
                if similarity(sig, signatures[leader]) >= self.threshold:
                    self.union(leader, doc)
                    break
            else:
                leaders.append(doc)

    def groups(self) -> dict[str, list[str]]:
        """Cluster id (its smallest member) -> members, for clusters of two or more documents."""
        out: dict[str, list[str]] = {}
        for doc in self.parent:
            out.setdefault(self.find(doc), []).append(doc)
        return {root: sorted(members) for root, members in out.items() if len(members) > 1}


def cluster_documents(
    signatures: dict[str, np.ndarray], bands: int = BANDS, rows: int = ROWS, threshold: float = THRESHOLD
) -> dict[str, list[str]]:
    """In-memory clustering of a small set of documents (the bench and tests; the store uses SQL buckets)."""
    buckets: dict[int, list[str]] = {}
    for doc, sig in signatures.items():
        for key in band_keys(sig, bands, rows):
            buckets.setdefault(key, []).append(doc)
    clusters = Clusters(threshold)
    for docs in buckets.values():
        if len(docs) > 1:
            clusters.add_bucket(docs, signatures)
    return clusters.groups()


def pairs_of(groups: Iterable[Sequence[str]]) -> set[tuple[str, str]]:
    """Every unordered pair of documents that share a cluster."""
    out = set()
    for members in groups:
        ordered = sorted(members)
        out.update((a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :])
    return out
