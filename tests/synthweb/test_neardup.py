"""MinHash signatures, candidate probabilities and clustering (synthweb.neardup)."""

import random

import numpy as np

from synthweb import neardup

TEXT = (
    "The river rose through the night and by morning the lower streets of the town were under water. Shop "
    "owners carried their stock upstairs while volunteers filled sandbags outside the school, and the mayor "
    "said the new flood wall had held back the worst of it although the old bridge would stay closed for a week."
)
OTHER = (
    "A small orchestra from the north toured the coast this summer, playing in churches, barns and once on a "
    "fishing boat. Its conductor says audiences were bigger than in the cities, and that the children who came "
    "to the free matinees asked better questions about the music than any critic had in twenty years."
)


def replace_words(text: str, rate: float, seed: int = 1) -> str:
    rng = random.Random(seed)
    return " ".join("lorem" + str(rng.randrange(999)) if rng.random() < rate else w for w in text.split())


def test_signatures_are_reproducible_and_pinned():
    sig = neardup.signature(TEXT)
    assert sig.dtype == np.uint32 and sig.shape == (neardup.NUM_PERM,)
    assert np.array_equal(sig, neardup.signature(TEXT.upper()))  # words are lowercased
    # Stored signatures are compared with ones computed later: the values must never drift.
    assert sig[:4].tolist() == PINNED


PINNED = [685407922, 3247793196, 1126563313, 2950156276]  # rensa 0.5.0, SEED 20261202


def test_short_texts_get_no_signature():
    assert neardup.signature("too short to say anything about copying") is None
    assert neardup.shingles("") == []


def test_similarity_estimates_jaccard():
    a, b = neardup.signature(TEXT), neardup.signature(replace_words(TEXT, 0.1))
    sa, sb = set(neardup.shingles(TEXT)), set(neardup.shingles(replace_words(TEXT, 0.1)))
    true = len(sa & sb) / len(sa | sb)
    assert abs(neardup.similarity(a, b) - true) < 0.15
    assert neardup.similarity(a, neardup.signature(OTHER)) < 0.2


def test_candidate_probability_is_steep_around_the_threshold():
    assert neardup.candidate_probability(0.8) > 0.99
    assert neardup.candidate_probability(0.6) > 0.95
    assert neardup.candidate_probability(0.2) < 0.1


def test_clusters_join_copies_and_keep_strangers_apart():
    docs = {
        "a": TEXT,
        "b": replace_words(TEXT, 0.05, seed=2),
        "c": replace_words(TEXT, 0.1, seed=3),
        "d": OTHER,
        "e": replace_words(OTHER, 0.05, seed=4),
    }
    sigs = {k: neardup.signature(v) for k, v in docs.items()}
    groups = neardup.cluster_documents(sigs)
    assert groups == {"a": ["a", "b", "c"], "d": ["d", "e"]}  # a cluster's id is its smallest member
    assert neardup.pairs_of(groups.values()) == {("a", "b"), ("a", "c"), ("b", "c"), ("d", "e")}


def test_leader_clustering_compares_each_copy_once():
    sigs = {f"copy{i:02d}": neardup.signature(TEXT) for i in range(40)}
    clusters = neardup.Clusters()
    clusters.add_bucket(list(sigs), sigs)
    assert clusters.compared == 39
    assert list(clusters.groups().values()) == [sorted(sigs)]
