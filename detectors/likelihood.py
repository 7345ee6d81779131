"""Zero-shot likelihood detectors (kind "likelihood") over causal LMs given as ONNX graphs.

The manifest names a tokenizer.json (Hugging Face `tokenizers`) and one or two causal LMs
(`input_ids` [+ `attention_mask`, `position_ids`] -> `logits` [B, T, V]):

- "binoculars" (Hans et al. 2024): log-perplexity of the text under the performer divided by
  the cross-perplexity (observer's next-token distribution scored by the performer's log-probs),
  as the reference implementation computes it. Low = machine-like.
- "fast-detectgpt" (Bao et al. 2024), analytic sampling discrepancy: how much more likely the
  text is under the scoring model (observer) than texts sampled from the reference model
  (performer, or the observer itself with one model), in standard deviations. High = machine-like.

Scores come from logits in numpy, per text over its attended tokens only, on texts cut to
`max_tokens`. The raw score maps to P(synthetic) with a logistic `slope * raw + intercept`:
the "logistic" entry of calibration.json once `synthweb detectors calibrate` has fit it on
labelled texts, else the manifest's `score_map` (a rough, uncalibrated default).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detectors.runtime import DetectorError

METHODS = ("binoculars", "fast-detectgpt")
DEFAULT_MAX_TOKENS = 256
# Uncalibrated defaults. Binoculars: the published low-error threshold 0.9015 (Falcon-7B pair);
# Fast-DetectGPT: discrepancies above ~2 are typical of machine text. Calibrate for real use.
DEFAULT_SCORE_MAP = {
    "binoculars": {"slope": -20.0, "intercept": 20.0 * 0.9015},
    "fast-detectgpt": {"slope": 1.0, "intercept": -2.0},
}
# Cap on float32 logits held at once per model (rows are split into smaller runs above it).
LOGITS_BUDGET_BYTES = 256 * 2**20
CHARS_PER_TOKEN_CAP = 12  # texts are cut to max_tokens * this many characters before tokenizing
UNSCORABLE_P = 0.5  # texts with fewer than 2 tokens have no next-token statistics


def _log_probs(logits: np.ndarray, probs: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """log_softmax over the last axis in float32, and softmax from the same exp pass when asked."""
    logp = logits.astype(np.float32, copy=True)
    logp -= logp.max(axis=-1, keepdims=True)
    e = np.exp(logp)
    total = e.sum(axis=-1, keepdims=True)
    logp -= np.log(total)
    if not probs:
        return logp, None
    e /= total
    return logp, e


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over the last axis of a * b, as batched BLAS dot products ([B, T, V] -> [B, T])."""
    return np.matmul(a[..., None, :], b[..., :, None])[..., 0, 0]


def binoculars_scores(observer: np.ndarray, performer: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Binoculars score per row from logits [B, T, V], ids and mask [B, T] (NaN with < 2 tokens)."""
    target, valid = ids[:, 1:], mask[:, 1:].astype(bool) & mask[:, :-1].astype(bool)
    logp_perf, _ = _log_probs(performer[:, :-1])
    nll = -np.take_along_axis(logp_perf, target[..., None], axis=-1)[..., 0]
    _, p_obs = _log_probs(observer[:, :-1], probs=True)
    x_ent = -_rowdot(p_obs, logp_perf)
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ppl = np.where(valid, nll, 0.0).sum(axis=1) / n
        x_ppl = np.where(valid, x_ent, 0.0).sum(axis=1) / n
        return np.where(n > 0, ppl / x_ppl, np.nan)


def fast_detectgpt_scores(scoring: np.ndarray, reference: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Analytic sampling discrepancy per row (NaN with < 2 tokens); `reference` may be `scoring`."""
    target, valid = ids[:, 1:], mask[:, 1:].astype(bool) & mask[:, :-1].astype(bool)
    same = reference is scoring
    lp, q = _log_probs(scoring[:, :-1], probs=same)
    if not same:
        _, q = _log_probs(reference[:, :-1], probs=True)
    ll = np.take_along_axis(lp, target[..., None], axis=-1)[..., 0]
    mean = _rowdot(q, lp)
    lp *= lp  # in place: lp is not needed after this
    var = _rowdot(q, lp) - mean * mean
    num = np.where(valid, ll - mean, 0.0).sum(axis=1)
    den = np.sqrt(np.where(valid, var, 0.0).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid.sum(axis=1) > 0, num / den, np.nan)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


class CausalLM:
    """One causal LM ONNX session; feeds whichever of input_ids/attention_mask/position_ids it takes."""

    def __init__(self, model_file: Path, make_session):
        if not model_file.is_file():
            raise DetectorError(f"{model_file.parent}: model file {model_file.name!r} is missing")
        self.file = model_file
        self.session = make_session(model_file)
        self.inputs = [i.name for i in self.session.get_inputs()]
        unknown = [n for n in self.inputs if n not in ("input_ids", "attention_mask", "position_ids")]
        if "input_ids" not in self.inputs or unknown:
            raise DetectorError(
                f"{model_file}: a causal LM graph must take input_ids [+ attention_mask, position_ids] "
                f"(export without past key values); it takes {self.inputs}"
            )
        last = self.session.get_outputs()[0].shape[-1]
        self.vocab = last if isinstance(last, int) else None  # else learnt from a first run

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask, "position_ids": np.maximum(np.cumsum(mask, 1) - 1, 0)}
        try:
            out = self.session.run(None, {k: feed[k] for k in self.inputs})[0]
        except Exception as exc:  # onnxruntime's own error types; e.g. more tokens than the context
            raise DetectorError(f"{self.file}: causal LM failed on a batch of shape {ids.shape}: {exc}") from exc
        if out.ndim != 3 or out.shape[:2] != ids.shape:
            raise DetectorError(f"{self.file}: first output has shape {out.shape}, expected logits [B, T, V]")
        return out


class LikelihoodScorer:
    """The scorer of kind "likelihood" (see the module docstring).

    Built by the runtime as LikelihoodScorer(directory, manifest, make_session), where
    make_session(model_file) opens an ONNX Runtime session on the preferred providers.
    """

    def __init__(self, path: Path, manifest: dict, make_session):
        from tokenizers import Tokenizer

        m = manifest
        observer = path / m["observer"]
        performer = path / m["performer"] if m.get("performer") else observer
        self.method = m.get("method") or ("binoculars" if performer != observer else "fast-detectgpt")
        if self.method not in METHODS:
            raise DetectorError(f"{path}: unknown likelihood method {self.method!r} (known: {', '.join(METHODS)})")
        self.max_tokens = int(m.get("max_tokens", DEFAULT_MAX_TOKENS))
        if self.max_tokens < 2:
            raise DetectorError(f"{path}: max_tokens must be at least 2")
        self.add_special_tokens = bool(m.get("add_special_tokens", True))
        try:
            self.tokenizer = Tokenizer.from_file(str(path / m.get("tokenizer", "tokenizer.json")))
        except Exception as exc:  # tokenizers raises plain Exceptions
            raise DetectorError(f"{path}: cannot load tokenizer: {exc}") from exc
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.observer = CausalLM(observer, make_session)
        self.performer = self.observer if performer == observer else CausalLM(performer, make_session)
        self.providers = self.observer.session.get_providers()
        self.score_map = dict(m.get("score_map") or DEFAULT_SCORE_MAP[self.method])
        if m.get("calibration"):
            logistic = json.loads((path / m["calibration"]).read_text(encoding="utf-8")).get("logistic")
            if logistic:
                self.score_map = {"slope": float(logistic["slope"]), "intercept": float(logistic["intercept"])}

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        cut = [(t or "")[: self.max_tokens * CHARS_PER_TOKEN_CAP] for t in texts]
        encoded = self.tokenizer.encode_batch(cut, add_special_tokens=self.add_special_tokens)
        return [e.ids[: self.max_tokens] for e in encoded]

    def raw_scores(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        """The method's raw score per text (NaN for texts with fewer than 2 tokens)."""
        ids = self.token_ids(texts)
        out = np.full(len(texts), np.nan)
        # Similar lengths share a batch, so little compute goes to padding; results go back in order.
        order = [i for i in sorted(range(len(ids)), key=lambda i: len(ids[i])) if len(ids[i]) >= 2]
        batch_size = max(1, int(batch_size))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._score_rows([ids[i] for i in rows])
        return out

    def _score_rows(self, rows: list[list[int]]) -> np.ndarray:
        t = max(len(r) for r in rows)
        ids = np.zeros((len(rows), t), dtype=np.int64)  # right padding: real tokens never attend a pad
        mask = np.zeros((len(rows), t), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = r, 1
        if self.observer.vocab is None:
            self.observer.vocab = self.observer.logits(ids[:1, :2], mask[:1, :2]).shape[-1]
        vocab = self.observer.vocab
        if int(ids.max()) >= vocab:
            raise DetectorError(f"tokenizer gives id {int(ids.max())} but the model has only {vocab} logits")
        # Logits are [rows, T, V] float32 per model; size runs so both models and a temporary fit the budget.
        step = max(1, LOGITS_BUDGET_BYTES // (t * vocab * 4 * 3))
        scores = []
        for start in range(0, len(rows), step):
            sub_ids, sub_mask = ids[start : start + step], mask[start : start + step]
            obs = self.observer.logits(sub_ids, sub_mask)
            perf = obs if self.performer is self.observer else self.performer.logits(sub_ids, sub_mask)
            if perf.shape != obs.shape:
                raise DetectorError(f"observer and performer logits differ in shape: {obs.shape} vs {perf.shape}")
            method = binoculars_scores if self.method == "binoculars" else fast_detectgpt_scores
            scores.append(method(obs, perf, sub_ids, sub_mask))
        return np.concatenate(scores)

    def probability(self, raw: np.ndarray) -> np.ndarray:
        """P(synthetic) from raw scores through the logistic score map; unscorable texts get 0.5."""
        p = sigmoid(self.score_map["slope"] * np.nan_to_num(raw, nan=0.0) + self.score_map["intercept"])
        return np.where(np.isnan(raw), UNSCORABLE_P, p)

    def score(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        return self.probability(self.raw_scores(texts, batch_size=batch_size))
