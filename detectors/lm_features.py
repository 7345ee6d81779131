"""Zero-shot statistics of texts under the shipped causal LMs, and detectors built on them (kind "lm-features").

Per model and text (its first `max_tokens` tokens): mean log-likelihood and its spread, mean log-rank,
entropy, Fast-DetectGPT's analytic discrepancy, the single-model Binoculars ratio and the log-likelihood /
log-rank ratio (detectors/token_stats.py `text_features`). Each model tokenizes with its own tokenizer, so
models meet per text, not per token. The per-token statistics are computed by a small ONNX graph next to
the logits (on the GPU under CUDA), so only [B, T-1, 5] floats reach the host.

A detector of this kind is a manifest naming the models and a head (`head.json`: the features it reads,
their standardisation, coefficients and intercept of a logistic regression), so one feature with a fixed
sign is a plain zero-shot detector and several make a small trained combiner. The model files come from
the model store (detectors/lm_build.py), built by `synthweb detectors build`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detectors.likelihood import (
    CHARS_PER_TOKEN_CAP,
    DEFAULT_MAX_TOKENS,
    UNSCORABLE_P,
    CausalLM,
    pad_rows,
    sigmoid,
    token_stats_runs,
)
from detectors.runtime import DetectorError
from detectors.token_stats import CONTRAST_NAMES, FEATURE_NAMES, contrast_features, stats_graph, text_features

# Recent texts' statistics kept per loaded model (~5 KB each): `zeroshot`, `gemma3` and `smollm2` scoring the
# same pages (rescore, report --detector a,b, the eval gate) run each model once per text.
MEMO_TEXTS = 4096
_LOADED: dict[tuple, LMStatistics] = {}  # (model, directory, max_tokens, skip) -> the loaded model


class LMStatistics:
    """One causal LM with its tokenizer: per-text zero-shot statistics (`features`), and for a model with a chat
    template, how they change when it reads the text as its own answer (`contrasts`)."""

    def __init__(self, name: str, directory: Path, make_session, max_tokens: int = DEFAULT_MAX_TOKENS, skip: int = 0,
                 chat_template: str | None = None):  # fmt: skip
        from tokenizers import Tokenizer

        self.name, self.max_tokens, self.skip = name, int(max_tokens), int(skip)
        try:
            self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises plain Exceptions
            raise DetectorError(f"{directory}: cannot load tokenizer: {exc}") from exc
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        # The chat reading is the template's tokens, then the text's tokens after the start token(s) the
        # tokenizer adds (the template's encoding has them already).
        self.n_special = len(self.tokenizer.encode("").ids)
        self.chat_prefix = self.tokenizer.encode(chat_template).ids if chat_template else None
        self.lm = CausalLM(directory / "model.onnx", make_session)
        self._memo: dict[bytes, np.ndarray] = {}  # token ids -> their statistics, for detectors sharing this model
        self.stats = make_session(stats_graph("features", False, (self.lm.session.get_outputs()[0].type,)))
        self.providers = self.lm.session.get_providers()

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        cut = [(t or "")[: self.max_tokens * CHARS_PER_TOKEN_CAP] for t in texts]
        return [e.ids[: self.max_tokens] for e in self.tokenizer.encode_batch(cut)]

    def token_stats(self, texts: list[str], batch_size: int = 8, reading: str = "plain") -> list[np.ndarray]:
        """Per text, its [n_tokens - 1, 5] "features" token statistics (empty for < 2 tokens).

        reading "chat": the text as the model's answer in its chat template; the rows are the same text
        tokens' as in the plain reading, one for one.
        """
        ids, drop = self.token_ids(texts), 0
        enough = [len(row) >= 2 for row in ids]
        if reading == "chat":
            if self.chat_prefix is None:
                raise DetectorError(f"language model {self.name} has no chat template: it has no chat reading")
            ids = [self.chat_prefix + row[self.n_special :] for row in ids]
            drop = len(self.chat_prefix) - self.n_special  # rows predicting the template's own tokens
        elif reading != "plain":
            raise ValueError(f"unknown reading {reading!r}")
        keys = [np.asarray(row, dtype=np.int64).tobytes() for row in ids]
        out = [self._memo.get(k, np.zeros((0, 5), dtype=np.float32)) for k in keys]
        # Similar lengths share a batch, so little compute goes to padding.
        todo = [i for i in range(len(ids)) if enough[i] and keys[i] not in self._memo]
        order = sorted(todo, key=lambda i: len(ids[i]))
        for start in range(0, len(order), max(1, int(batch_size))):
            rows = order[start : start + max(1, int(batch_size))]
            for i, s in zip(rows, self._run([ids[i] for i in rows]), strict=True):
                out[i] = s[drop:]
                self._memo[keys[i]] = out[i]
        while len(self._memo) > MEMO_TEXTS:  # oldest first: dicts keep insertion order
            del self._memo[next(iter(self._memo))]
        return out

    def _run(self, rows: list[list[int]]) -> list[np.ndarray]:
        ids, mask = pad_rows(rows)
        out = []
        for sub_mask, stats in token_stats_runs(self.stats, self.lm, self.lm, ids, mask):
            out += [stats[r, : int(sub_mask[r].sum()) - 1] for r in range(len(sub_mask))]
        return out

    def features(self, texts: list[str], batch_size: int = 8) -> np.ndarray:
        """[N, len(FEATURE_NAMES)] per-text statistics (NaN rows for texts with < 2 tokens)."""
        return features_from_stats(self.token_stats(texts, batch_size), skip=self.skip)

    def contrasts(self, texts: list[str], batch_size: int = 8) -> np.ndarray:
        """[N, len(CONTRAST_NAMES)] the chat reading's change to the statistics (token_stats.contrast_features)."""
        chat = self.token_stats(texts, batch_size, reading="chat")
        return contrast_features(self.token_stats(texts, batch_size), chat, skip=self.skip)


def features_from_stats(stats: list[np.ndarray], max_tokens: int | None = None, skip: int = 0) -> np.ndarray:
    """Per-text features from per-text token statistics (as `LMStatistics.token_stats` returns them)."""
    width = max([len(s) for s in stats] + [1])
    padded = np.zeros((len(stats), width, 5), dtype=np.float32)
    mask = np.zeros((len(stats), width + 1), dtype=np.int64)
    for i, s in enumerate(stats):
        padded[i, : len(s)] = s
        mask[i, : len(s) + 1] = 1 if len(s) else 0
    return text_features(padded, mask, max_tokens, skip)


def head_logits(head: dict, columns: dict[str, np.ndarray]) -> np.ndarray:
    """The head's logit per text from named feature columns ("model.feature")."""
    x = np.stack([columns[f] for f in head["features"]], axis=1)
    z = (x - np.asarray(head["mean"])) / np.asarray(head["scale"])
    return z @ np.asarray(head["coef"], dtype=np.float64) + float(head["intercept"])


class LMFeatureScorer:
    """The scorer of kind "lm-features" (see the module docstring).

    Manifest: "models" [{"name": "smollm2-135m", "max_tokens": 256, "skip_tokens": 16}], "variant", "head".
    `skip_tokens`: the first tokens, predicted with little context, do not count (texts under twice that keep them).
    Optional "members": other detectors (e.g. ["minilm"]) whose scores the head reads as "NAME.logit" columns:
    what an encoder sees of a text's style complements what the LMs' likelihoods see of it. A head reading a
    model's `CONTRAST_NAMES` has that model read each text a second time, as its chat answer.
    """

    def __init__(self, path: Path, manifest: dict, make_session):
        from detectors.lm_build import MODELS, require_built
        from detectors.runtime import load_detector

        self.variant = str(manifest.get("variant", "fp32"))
        self.head = json.loads((path / manifest.get("head", "head.json")).read_text(encoding="utf-8"))
        self.member_names = [str(name) for name in manifest.get("members", [])]
        member_cols = {f"{name}.logit" for name in self.member_names}
        used = {f.split(".", 1)[0] for f in self.head["features"] if f not in member_cols}
        self.models = []
        for spec in manifest["models"]:
            if spec["name"] in used:
                directory = require_built(spec["name"], self.variant)
                max_tokens, skip = spec.get("max_tokens", DEFAULT_MAX_TOKENS), spec.get("skip_tokens", 0)
                key = (spec["name"], str(directory), int(max_tokens), int(skip))
                if key not in _LOADED:  # detectors over the same model share its session (GBs for Gemma)
                    template = MODELS.get(spec["name"], {}).get("chat_template")
                    _LOADED[key] = LMStatistics(spec["name"], directory, make_session, max_tokens, skip, template)
                self.models.append(_LOADED[key])
        lm_features = [f for f in self.head["features"] if f not in member_cols]
        unknown = [f for f in lm_features if f.split(".", 1)[-1] not in FEATURE_NAMES + CONTRAST_NAMES]
        if unknown or used - {m.name for m in self.models}:
            raise DetectorError(f"{path}: head reads features no listed model gives: {unknown or sorted(used)}")
        contrasts = {f.split(".", 1)[0] for f in lm_features if f.split(".", 1)[1] in CONTRAST_NAMES}
        self.chat_readers = [m for m in self.models if m.name in contrasts]
        no_chat = [m.name for m in self.chat_readers if m.chat_prefix is None]
        if no_chat:
            raise DetectorError(f"{path}: head reads chat contrasts of {no_chat}, which have no chat template")
        self.members = [load_detector(name) for name in self.member_names]
        self.providers = list(dict.fromkeys(p for part in self.models + self.members for p in part.providers))

    def columns(self, texts: list[str], batch_size: int = 8) -> dict[str, np.ndarray]:
        """Every feature of every model, as "model.feature" columns, and each member's "member.logit"."""
        from detectors.ensemble import logit

        cols = {}
        for m in self.models:
            values = m.features(texts, batch_size)
            cols |= {f"{m.name}.{f}": values[:, k] for k, f in enumerate(FEATURE_NAMES)}
            if m in self.chat_readers:
                values = m.contrasts(texts, batch_size)
                cols |= {f"{m.name}.{f}": values[:, k] for k, f in enumerate(CONTRAST_NAMES)}
        for name, member in zip(self.member_names, self.members, strict=True):
            cols[f"{name}.logit"] = logit(member.score(texts))  # clipped as the ensemble's members are
        return cols

    def score(self, texts: list[str], batch_size: int = 8) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        z = head_logits(self.head, self.columns(texts, batch_size))
        return np.where(np.isnan(z), UNSCORABLE_P, sigmoid(np.nan_to_num(z)))
