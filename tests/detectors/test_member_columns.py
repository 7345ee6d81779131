"""The minilm column of an LM head is never in-sample: out of domain where minilm trained, refit per held-out split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from detectors.data import Record, split_groups
from detectors.member_columns import MinilmColumns

pytest.importorskip("sklearn")


def corpus(seed: int = 0) -> tuple[list[Record], np.ndarray]:
    """Groups of one human and one machine text over 3 domains and 2 generators; embeddings that carry the label."""
    rng = np.random.default_rng(seed)
    records = []
    for g in range(240):
        domain, generator = ("news", "wiki", "story")[g % 3], ("gpt-x", "gpt-y")[g % 2]
        records += [
            Record(f"human {g}", 0, domain, "human", f"g{g}"),
            Record(f"machine {g}", 1, domain, generator, f"g{g}"),
        ]
    y = np.array([r.label for r in records])
    X = rng.normal(size=(len(records), 2, 8)) + 0.8 * y[:, None, None] * (np.arange(8) < 3)
    return records, X.astype(np.float32)


def shipped_head(records, X) -> dict:
    from detectors.encoder_train import fit_head

    train_groups, _ = split_groups(records, holdout=0.2, salt="calib")
    rows = [i for i, r in enumerate(records) if r.group in train_groups]
    return fit_head(X[rows], np.array([records[i].label for i in rows]), [0, 1], 1.0)


def test_training_texts_get_out_of_fold_logits_and_calibration_texts_the_shipped_heads():
    records, X = corpus()
    head = shipped_head(records, X)
    cols = MinilmColumns(records, X, head)
    got = cols.for_shipping(records)
    trained = np.isin(np.arange(len(records)), cols.train_rows)
    assert 0 < trained.sum() < len(records)
    np.testing.assert_allclose(got[~trained], cols._logit(head, np.flatnonzero(~trained)))
    assert not np.allclose(got[trained], cols._logit(head, np.flatnonzero(trained)))  # not in-sample
    # Nothing of a training text's own domain shapes its logit: move that domain's other embeddings, it stays.
    i = int(np.flatnonzero(trained)[0])
    moved = X.copy()
    moved[[j for j, r in enumerate(records) if r.domain == records[i].domain]] += 5.0 * (records[i].label * 2 - 1)
    moved[i] = X[i]
    again = MinilmColumns(records, moved, head).for_shipping(records)
    assert again[i] == pytest.approx(got[i])
    other = next(j for j in np.flatnonzero(trained) if records[j].domain != records[i].domain)
    assert again[other] != pytest.approx(got[other])  # the moved domain trains the other domains' heads
    y = np.array([r.label for r in records])
    assert got[y == 1].mean() > got[y == 0].mean() + 1  # the signal survives


def test_each_held_out_split_gets_a_column_no_held_out_label_shapes():
    records, X = corpus()
    cols = MinilmColumns(records, X, shipped_head(records, X)).heldout(records)
    assert {"domain=news", "domain=wiki", "domain=story", "generator=gpt-x", "generator=gpt-y"} <= set(cols)
    flipped = [dataclasses.replace(r, label=1 - r.label) if r.domain == "news" else r for r in records]
    again = MinilmColumns(flipped, X, shipped_head(flipped, X)).heldout(flipped)
    np.testing.assert_allclose(again["domain=news"], cols["domain=news"])
    assert not np.allclose(again["domain=wiki"], cols["domain=wiki"])  # news trains that split's heads
