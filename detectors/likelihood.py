"""Zero-shot likelihood detectors (kind "likelihood") over causal LMs given as ONNX graphs.

The manifest names a tokenizer.json (Hugging Face `tokenizers`) and one or two causal LMs
(`input_ids` [+ `attention_mask`, `position_ids`] -> `logits` [B, T, V]):

- "binoculars" (Hans et al. 2024): log-perplexity of the text under the performer divided by
  the cross-perplexity (observer's next-token distribution scored by the performer's log-probs),
  as the reference implementation computes it. Low = machine-like.
- "fast-detectgpt" (Bao et al. 2024), analytic sampling discrepancy: how much more likely the
  text is under the scoring model (observer) than texts sampled from the reference model
  (performer, or the observer itself with one model), in standard deviations. High = machine-like.

Per-token statistics come from the logits in a small ONNX graph run where the logits are (the GPU
with the CUDA provider: they never travel to the host; detectors/token_stats.py), and are summed per
text over its attended tokens only, on texts cut to `max_tokens`. The raw score maps to P(synthetic)
with a logistic `slope * raw + intercept`: the "logistic" entry of calibration.json once `synthweb
detectors calibrate` has fit it on labelled texts, else the manifest's `score_map` (a rough,
uncalibrated default).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detectors.runtime import DetectorError
from detectors.token_stats import reduce_token_stats, stats_graph

METHODS = ("binoculars", "fast-detectgpt")
DEFAULT_MAX_TOKENS = 256
# Uncalibrated defaults. Binoculars: the published low-error threshold 0.9015 (Falcon-7B pair);
# Fast-DetectGPT: discrepancies above ~2 are typical of machine text. Calibrate for real use.
DEFAULT_SCORE_MAP = {
    "binoculars": {"slope": -20.0, "intercept": 20.0 * 0.9015},
    "fast-detectgpt": {"slope": 1.0, "intercept": -2.0},
}
# Cap on the logits and their float32 copies held at once, per device (rows are split into smaller
# runs above it): a GPU holds a far larger batch than the host should.
LOGITS_BUDGET_BYTES = {"cpu": 256 * 2**20, "cuda": 8 * 2**30}
CHARS_PER_TOKEN_CAP = 12  # texts are cut to max_tokens * this many characters before tokenizing
UNSCORABLE_P = 0.5  # texts with fewer than 2 tokens have no next-token statistics


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

    def logits(self, ids: np.ndarray, mask: np.ndarray):
        """The logits [B, T, V] as an OrtValue left on the session's device (I/O binding)."""
        feed = {"input_ids": ids, "attention_mask": mask, "position_ids": np.maximum(np.cumsum(mask, 1) - 1, 0)}
        binding = self.session.io_binding()
        for name in self.inputs:
            binding.bind_cpu_input(name, np.ascontiguousarray(feed[name]))
        binding.bind_output(self.session.get_outputs()[0].name, *_device(self.session))
        try:
            self.session.run_with_iobinding(binding)
        except Exception as exc:  # onnxruntime's own error types; e.g. more tokens than the context
            raise DetectorError(f"{self.file}: causal LM failed on a batch of shape {ids.shape}: {exc}") from exc
        out = binding.get_outputs()[0]
        if len(out.shape()) != 3 or tuple(out.shape()[:2]) != ids.shape:
            raise DetectorError(f"{self.file}: first output has shape {out.shape()}, expected logits [B, T, V]")
        return out


def pad_rows(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask [rows, longest], right-padded: real tokens never attend a pad."""
    t = max(len(r) for r in rows)
    ids = np.zeros((len(rows), t), dtype=np.int64)
    mask = np.zeros((len(rows), t), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = r, 1
    return ids, mask


def token_stats_runs(stats_session, observer: CausalLM, performer: CausalLM, ids: np.ndarray, mask: np.ndarray):
    """Run the LM(s) and the statistics graph on padded rows; yields (mask, stats [rows, T-1, k]) per run.

    `performer` may be `observer` itself (one model). Runs are sized to the device's logits budget.
    """
    t = ids.shape[1]
    if observer.vocab is None:
        observer.vocab = observer.logits(ids[:1, :2], mask[:1, :2]).shape()[-1]
    vocab = observer.vocab
    if int(ids.max()) >= vocab:
        raise DetectorError(f"{observer.file}: tokenizer gives id {int(ids.max())}, the model has only {vocab} logits")
    # Logits are [rows, T, V] per model, and the statistics graph holds a few float32 copies of them
    # (log-probs, probs, products): size runs so about six such arrays fit the device's budget.
    step = max(1, LOGITS_BUDGET_BYTES[_device(observer.session)[0]] // (t * vocab * 4 * 6))
    for start in range(0, len(ids), step):
        sub_ids, sub_mask = ids[start : start + step], mask[start : start + step]
        binding = stats_session.io_binding()
        obs = observer.logits(sub_ids, sub_mask)
        binding.bind_ortvalue_input("observer", obs)
        if performer is not observer:
            perf = performer.logits(sub_ids, sub_mask)
            if perf.shape() != obs.shape():
                raise DetectorError(f"observer and performer logits differ in shape: {obs.shape()} vs {perf.shape()}")
            binding.bind_ortvalue_input("performer", perf)
        binding.bind_cpu_input("input_ids", sub_ids)
        binding.bind_output("stats")  # host memory: [rows, T-1, k] floats, all that leaves the device
        stats_session.run_with_iobinding(binding)
        yield sub_mask, binding.copy_outputs_to_cpu()[0]


def _device(session) -> tuple[str, int]:
    """Where a session's outputs stay: the GPU under the CUDA provider, else host memory."""
    return ("cuda", 0) if session.get_providers()[0] == "CUDAExecutionProvider" else ("cpu", 0)


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
        lms = (self.observer,) if self.performer is self.observer else (self.observer, self.performer)
        types = tuple(lm.session.get_outputs()[0].type for lm in lms)
        self.stats = make_session(stats_graph(self.method, len(lms) == 2, types))
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
        ids, mask = pad_rows(rows)
        runs = token_stats_runs(self.stats, self.observer, self.performer, ids, mask)
        return np.concatenate([reduce_token_stats(self.method, stats, sub_mask) for sub_mask, stats in runs])

    def probability(self, raw: np.ndarray) -> np.ndarray:
        """P(synthetic) from raw scores through the logistic score map; unscorable texts get 0.5."""
        p = sigmoid(self.score_map["slope"] * np.nan_to_num(raw, nan=0.0) + self.score_map["intercept"])
        return np.where(np.isnan(raw), UNSCORABLE_P, p)

    def score(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        return self.probability(self.raw_scores(texts, batch_size=batch_size))
