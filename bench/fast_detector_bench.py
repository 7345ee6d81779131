"""The fast detector against its peers, side by side in one run, one core each: docs/s.

python bench/fast_detector_bench.py [--docs 2000] [--words 400] [--repeat 3]

- hashed (fused kernel): what synthweb runs for the `hashed` detector;
- hashed (ONNX Runtime): the same model.onnx run by ORT on ids from `detectors.hashed.ngram_ids`;
- lexical (ONNX Runtime): the TF-IDF char 1-4-gram + logistic regression detector;
- scikit-learn HashingVectorizer(char 1-4) + LogisticRegression: what a user would write by hand.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from detectors import hashed  # noqa: E402
from detectors.runtime import load_detector, preprocess  # noqa: E402

WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no will "
    "Research Climate market policy People system data model language city river history music"
).split()


def one_thread_session(model) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def contenders(docs: list[str]) -> dict:
    fast = load_detector("hashed")
    bits, max_n = int(fast.manifest["bits"]), int(fast.manifest["max_n"])
    graph = one_thread_session(str(fast.path / fast.manifest["model"]))

    def hashed_onnx(texts):
        ids, doc_ids, counts = hashed.ngram_ids(texts, bits, max_n)
        feeds = {"ngram_ids": ids, "doc_ids": doc_ids, "n_ngrams": counts.astype(np.float32)}
        return graph.run(None, feeds)[0]

    lexical = load_detector("lexical")
    lexical_session = one_thread_session(str(lexical.path / lexical.manifest["model"]))

    def lexical_onnx(texts):
        batch = np.array([preprocess(t) for t in texts], dtype=object).reshape(-1, 1)
        return lexical_session.run(["p_synthetic"], {"text": batch})[0]

    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = HashingVectorizer(analyzer="char", ngram_range=(1, 4), n_features=1 << bits, alternate_sign=False)
    clf = LogisticRegression(max_iter=200).fit(vectorizer.transform(docs[:200]), np.arange(200) % 2)

    def sklearn_hashing(texts):
        return clf.predict_proba(vectorizer.transform([preprocess(t) for t in texts]))[:, 1]

    return {
        "hashed (fused kernel)": fast.score,
        "hashed (ONNX Runtime)": hashed_onnx,
        "lexical TF-IDF (ONNX Runtime)": lexical_onnx,
        "sklearn HashingVectorizer + LR": sklearn_hashing,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--words", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rnd = random.Random(0)
    docs = [" ".join(rnd.choice(WORDS) for _ in range(args.words)) for _ in range(args.docs)]
    chars = sum(map(len, docs)) / len(docs)
    runs = contenders(docs)
    for score in runs.values():
        score(docs[:64])  # warm-up (compiles the kernel on a first run)
    print(f"{args.docs} docs of {args.words} words ({chars:,.0f} chars), one core each, best of {args.repeat}\n")
    print("| scorer | docs/s | MB/s | vs hashed kernel |\n|---|---|---|---|")
    rates = {}
    for name, score in runs.items():
        n = args.docs if "fused" in name else min(args.docs, 500)  # the slow ones: fewer docs
        best = min(_timed(score, docs[:n]) for _ in range(args.repeat))
        rates[name] = n / best
    top = rates["hashed (fused kernel)"]
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate * chars / 1e6:.1f} | {rate / top:.3f}x |")


def _timed(score, docs) -> float:
    t = time.perf_counter()
    score(docs)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
