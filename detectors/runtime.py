"""Load detector directories (manifest.json + ONNX model) and score texts with ONNX Runtime.

A detector directory holds `manifest.json` naming the model file, its string input,
its output (P(machine-written) per text), the languages it supports, the minimum words
for a meaningful score and an optional calibration file. Names resolve to
detectors/shipped/<name>/ and then to the dirs in $SYNTHWEB_DETECTORS_PATH.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from pathlib import Path

import numpy as np

SHIPPED = Path(__file__).resolve().parent / "shipped"
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
# Text normalisations a manifest may ask for; applied in Python because the ONNX
# StringNormalizer needs OS locales that slim containers lack.
PREPROCESSORS = {
    "collapse_whitespace": lambda t: " ".join(t.split()),
    "lowercase": str.lower,
}


class DetectorError(ValueError):
    """Unknown detector name, or a detector directory that cannot be loaded."""


# Manifest kinds other than the built-in "onnx-text", as "module:Class", imported on first use.
# A scorer is built as Class(path, manifest, make_session) and has score(texts, batch_size) -> array.
KIND_SCORERS = {
    "onnx-encoder": "detectors.encoder:EncoderScorer",
    "ensemble": "detectors.ensemble:EnsembleScorer",
    "likelihood": "detectors.likelihood:LikelihoodScorer",
    "lm-features": "detectors.lm_features:LMFeatureScorer",
    "hashed-ngrams": "detectors.hashed:HashedScorer",
}


def preprocess(text: str, steps=("collapse_whitespace", "lowercase")) -> str:
    for step in steps:
        text = PREPROCESSORS[step](text)
    return text


def search_path() -> list[Path]:
    extra = os.environ.get("SYNTHWEB_DETECTORS_PATH", "")
    return [SHIPPED] + [Path(p) for p in extra.split(os.pathsep) if p]


def available() -> list[dict]:
    """One entry per detector directory on the search path (manifests only; no model is loaded)."""
    found, seen = [], set()
    for base in search_path():
        if not base.is_dir():
            continue
        for manifest_path in sorted(base.glob("*/manifest.json")):
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
                name = str(manifest["name"])
            except (OSError, ValueError, KeyError) as exc:
                found.append({"name": manifest_path.parent.name, "error": f"broken manifest: {exc}"})
                continue
            cost = manifest.get("cost") or {}
            found.append(
                {
                    "name": name,
                    "version": str(manifest.get("version", "")),
                    "kind": manifest.get("kind", "onnx-text"),
                    "languages": ",".join(manifest.get("languages") or []) or "any",
                    "min_words": int(manifest.get("min_words", 0)),
                    "calibrated": bool(manifest.get("calibration")),  # shares need it (Detector.require_calibration)
                    # measured by bench/lm_bench.py (LM detectors) or the other benches; null = not measured
                    "cpu_ms_per_doc": cost.get("cpu_ms_per_doc"),
                    "gpu_ms_per_doc": cost.get("gpu_ms_per_doc"),
                    "path": str(manifest_path.parent),
                    "shadowed": name in seen,  # the first directory of a name wins, as in `resolve`
                }
            )
            seen.add(name)
    return found


def resolve(name_or_path: str) -> Path:
    """A directory path with manifest.json, or a detector name on the search path."""
    path = Path(name_or_path).expanduser()
    if (path / "manifest.json").is_file():
        return path.resolve()
    if os.sep not in name_or_path and "/" not in name_or_path:
        for base in search_path():
            if (base / name_or_path / "manifest.json").is_file():
                return (base / name_or_path).resolve()
    where = ", ".join(str(p) for p in search_path())
    raise DetectorError(f"unknown detector {name_or_path!r}: not a detector directory nor a name in {where}")


def choose_providers() -> list[str]:
    """Preferred available providers, or the $SYNTHWEB_ORT_PROVIDERS override (comma list)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    override = os.environ.get("SYNTHWEB_ORT_PROVIDERS", "").strip()
    if override:
        wanted = [p.strip() for p in override.split(",") if p.strip()]
        missing = [p for p in wanted if p not in available]
        if missing:
            raise DetectorError(f"SYNTHWEB_ORT_PROVIDERS asks for {missing}, available: {available}")
        return wanted
    return [p for p in PROVIDER_PREFERENCE if p in available] or available


def open_session(model_file: Path | bytes):
    """An ONNX Runtime session on the preferred providers, for a model path or a serialised graph."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # Scoring runs beside extraction workers: a couple of threads, not every core.
    opts.intra_op_num_threads = min(2, os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    # Idle threads spinning for work burn the CPU the crawl needs: without it the zeroshot detector took 1.74 s of
    # CPU per document instead of 2.01 s, and 16 s instead of 26 s to load and score its first text, at the same
    # wall time (2 threads).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        model = model_file if isinstance(model_file, bytes) else str(model_file)  # a path or a serialised graph
        return ort.InferenceSession(model, sess_options=opts, providers=choose_providers())
    except Exception as exc:  # onnxruntime raises its own exception types
        what = "a built graph" if isinstance(model_file, bytes) else model_file
        raise DetectorError(f"cannot load ONNX model {what}: {exc}") from exc


class Detector:
    """A loaded detector: `score(texts)` gives P(synthetic) in [0, 1] per text."""

    def __init__(self, path: Path, models: bool = True):
        self.path = path
        self.loaded = models
        try:
            self.manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
            m = self.manifest
            self.kind = m.get("kind", "onnx-text")
            if self.kind != "onnx-text" and self.kind not in KIND_SCORERS:
                raise DetectorError(f"{path}: unsupported detector kind {self.kind!r}")
            self.name = str(m["name"])
            self.version = str(m["version"])
            model_file = path / m["model"] if self.kind == "onnx-text" else None
            self.input_name = m.get("input", "text")
            self.output_name = m.get("output")
            self.preprocess = tuple(m.get("preprocess", ()))
            unknown = [s for s in self.preprocess if s not in PREPROCESSORS]
            if unknown:
                raise DetectorError(f"{path}: unknown preprocess steps {unknown}")
            self.languages = list(m["languages"]) if m.get("languages") else None
            self.min_words = int(m.get("min_words", 0))
            self.calibration = {}
            if m.get("calibration"):
                self.calibration = json.loads((path / m["calibration"]).read_text(encoding="utf-8"))
        except DetectorError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DetectorError(f"broken detector manifest in {path}: {exc!r}") from exc
        self.scorer = None
        self.providers = []
        if not models:  # a description: what the manifest and calibration say, no model loaded
            return
        if self.kind != "onnx-text":
            self.scorer = self._scorer(path, m)
            self.providers = getattr(self.scorer, "providers", [])
            return
        if not model_file.is_file():
            raise DetectorError(f"{path}: model file {model_file.name!r} is missing")
        self.session = self._session(model_file)
        self.providers = self.session.get_providers()

    def _scorer(self, path: Path, manifest: dict):
        module, cls = KIND_SCORERS[self.kind].split(":")
        try:
            return getattr(importlib.import_module(module), cls)(path, manifest, self._session)
        except DetectorError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DetectorError(f"cannot load {self.kind} detector {path}: {exc}") from exc

    def _session(self, model_file: Path | bytes):
        return open_session(model_file)

    def score(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """P(synthetic) for each text, in order, computed in batches of `batch_size`."""
        if not self.loaded:
            raise DetectorError(f"detector {self.name} v{self.version} was described, not loaded: load_detector it")
        if self.scorer is not None:
            chunk = [preprocess(t or "", self.preprocess) for t in texts]
            return np.clip(np.asarray(self.scorer.score(chunk, batch_size), dtype=np.float64), 0.0, 1.0)
        out = np.empty(len(texts), dtype=np.float64)
        for start in range(0, len(texts), max(1, batch_size)):
            chunk = [preprocess(t or "", self.preprocess) for t in texts[start : start + batch_size]]
            batch = np.array(chunk, dtype=object).reshape(-1, 1)
            outputs = [self.output_name] if self.output_name else None
            result = np.asarray(self.session.run(outputs, {self.input_name: batch})[0], dtype=np.float64)
            if result.ndim == 2:  # models exporting [N, 2] class probabilities
                result = result[:, -1]
            out[start : start + len(chunk)] = result
        return np.clip(out, 0.0, 1.0)

    @property
    def variants(self) -> dict[str, str]:
        """The model variant (fp32, fp16, int8) of this detector and of its members, by detector name."""
        own = {self.name: str(self.manifest["variant"])} if self.manifest.get("variant") else {}
        members = getattr(self.scorer, "members", None)
        if members is None and not self.loaded:
            members = [describe_detector(name) for name in self.manifest.get("members", ())]
        for member in members or ():
            own |= member.variants
        return own

    def require_calibration(self) -> dict:
        """calibration.json's content, or a DetectorError saying why no share can be estimated and how to fix it.

        A calibration names the model variants it holds for (`variants`): int8 quantisation shifts
        scores, so histograms measured on fp32 would misstate an int8 model's shares.
        """
        fix = f"`synthweb detectors calibrate {self.path} FILE.jsonl` (lines with text and label human|machine)"
        if not self.calibration:
            raise DetectorError(
                f"detector {self.name} v{self.version} is not calibrated, so no share can be estimated; run {fix}"
            )
        for name, valid in self.calibration.get("variants", {}).items():
            variant = self.variants.get(name)
            if variant is not None and variant not in valid:
                raise DetectorError(
                    f"detector {self.name} v{self.version}: its calibration holds for {name} {' or '.join(valid)}, "
                    f"but {name}'s model is {variant}, which scores differently; rebuild {name} as {valid[0]} "
                    f"or run {fix}"
                )
        return self.calibration

    def __repr__(self) -> str:
        return f"Detector({self.name!r}, version={self.version!r}, providers={self.providers})"


@functools.lru_cache(maxsize=16)
def _load(path: Path) -> Detector:
    return Detector(path)


def load_detector(name_or_path: str) -> Detector:
    """Load (once per process and directory) a detector by name or directory path."""
    return _load(resolve(str(name_or_path)))


@functools.lru_cache(maxsize=16)
def _describe(path: Path) -> Detector:
    return Detector(path, models=False)


def describe_detector(name_or_path: str) -> Detector:
    """A detector's name, version, manifest and calibration, without loading its models (a report reads no text:
    loading `zeroshot`'s two language models would take it ~10 s); `score` raises."""
    return _describe(resolve(str(name_or_path)))
