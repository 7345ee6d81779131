"""The minilm detector's logit as a column of an LM head (manifest "members"), honest on every text a head sees.

A head fit on texts its member was trained on would learn to trust the member's in-sample confidence, so
the column is never in-sample. On the corpus's training groups (where the shipped minilm head was fit) it
is out of domain: each text is scored by a head refit (same layers, same ridge penalty) on the other
domains only, so the LM head learns how far to trust minilm on a domain it never saw, which is what every
web domain is to it. (Folds by article group instead, blind to domain, gained more on held-out generators
but lost TPR at 1% FPR on held-out domains: 0.483 -> 0.433 at C=1; by domain 0.477; detectors/README.md.)
On the calibration groups it is the shipped head's, as at run time. For the held-out table every split
gets its own column, from heads refit on the corpus side of the split that holds out the same domain or
generator: nothing of the held-out domain or generator shapes it.

Needs the corpus embeddings that `python -m detectors.encoder_train embed` caches.
"""

from __future__ import annotations

import json

import numpy as np

from detectors.data import Record, load_records, split_groups

MEMBER = "minilm"
COLUMN = f"{MEMBER}.logit"


def _key(r: Record) -> tuple:
    return (r.group, r.label, r.generator, r.text)


class MinilmColumns:
    """The "minilm.logit" column over texts of the corpus, computed from the cached corpus embeddings."""

    def __init__(self, records: list[Record], X: np.ndarray, head: dict):
        """`X`: each record's minilm layer means [n, layers, hidden]; `head`: the shipped minilm head."""
        self.records, self.X, self.head = records, X, head
        self.y = np.array([r.label for r in records])
        self.pos = {_key(r): i for i, r in enumerate(records)}
        domains = sorted({r.domain for r in records})
        self.fold = np.array([domains.index(r.domain) for r in records], dtype=np.int64)
        train_groups, _ = split_groups(records, holdout=0.2, salt="calib")
        self.train_rows = np.array([i for i, r in enumerate(records) if r.group in train_groups], dtype=np.int64)

    @classmethod
    def from_cache(cls) -> MinilmColumns:
        """Over the whole corpus, from the embeddings `python -m detectors.encoder_train embed` cached."""
        from detectors.encoder import DEFAULT_OUT
        from detectors.encoder_train import embed_corpus

        records = load_records()
        idx, emb = embed_corpus(records, compute=False)
        if len(idx) < len(records):
            raise SystemExit(
                f"minilm embeddings cover {len(idx)} of {len(records)} corpus texts: "
                "run `python -m detectors.encoder_train embed` first"
            )
        X = np.empty_like(emb)
        X[idx] = emb
        return cls(records, X, json.loads((DEFAULT_OUT / "head.json").read_text()))

    def rows(self, texts: list[Record]) -> np.ndarray:
        return np.array([self.pos[_key(r)] for r in texts], dtype=np.int64)

    def _fit(self, rows: np.ndarray) -> dict:
        from detectors.encoder_train import fit_head

        return fit_head(self.X[rows], self.y[rows], self.head["layers"], self.head["ridge_penalty"])

    def _logit(self, head: dict, rows: np.ndarray) -> np.ndarray:
        from detectors.encoder_train import head_scores
        from detectors.ensemble import logit

        return logit(head_scores(head, self.X[rows])) if len(rows) else np.zeros(0)

    def out_of_fold(self, fit_rows: np.ndarray, score_rows: np.ndarray) -> np.ndarray:
        """Logits of `score_rows`, each from a head fit on the `fit_rows` of other domains."""
        out = np.empty(len(score_rows))
        for k in np.unique(self.fold[score_rows]):
            mine = self.fold[score_rows] == k
            out[mine] = self._logit(self._fit(fit_rows[self.fold[fit_rows] != k]), score_rows[mine])
        return out

    def for_shipping(self, texts: list[Record]) -> np.ndarray:
        """The column a shipped head is fit and calibrated on: out of domain where minilm trained, else its own."""
        rows = self.rows(texts)
        trained = np.isin(rows, self.train_rows)
        out = self._logit(self.head, rows)
        out[trained] = self.out_of_fold(self.train_rows, rows[trained])
        return out

    def heldout(self, sample: list[Record]) -> dict[str, np.ndarray]:
        """Per held-out split of `sample` (detectors.train.split_indices), the column over all of `sample`."""
        from detectors.train import split_indices

        rows = self.rows(sample)
        corpus_train = {name: train for name, train, _ in split_indices(self.records)}
        out = {}
        for name, train, test in split_indices(sample):
            col = np.full(len(sample), np.nan)
            col[train] = self.out_of_fold(corpus_train[name], rows[train])
            col[test] = self._logit(self._fit(corpus_train[name]), rows[test])
            out[name] = col
        return out
