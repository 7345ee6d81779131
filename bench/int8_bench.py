"""Would int8 weights keep the zero-shot LMs' statistics and run faster on this CPU? A measurement.

    .venv/bin/python bench/int8_bench.py [--models smollm2-135m gemma3-270m] [--texts 24] [--rounds 3]

Per model, ONNX Runtime's dynamic quantization of the built fp32 graph (`quantize_dynamic`: int8 weights per
output channel, uint8 activations per tensor) in two forms: every MatMul but the output layer, and every
MatMul. The output layer (the projection onto the vocabulary, whose logits every statistic reads) is tied to
the input embedding through a Transpose, which quantization skips, so "every MatMul" first stores it
transposed. Against fp32 it reports: perplexity on `lm_build.CHECK_TEXT`; how far the per-text statistics
move on corpus texts (the largest of the 21 `FEATURE_NAMES`' mean absolute change, in units of that
statistic's spread over the texts); the Spearman correlation of the shipped single-model head's logit; and
seconds per text on 2 threads, the forms alternating round by round (best round: the machine is shared).
Quantized graphs are written to detectors/.cache/int8/ (gitignored); nothing here changes what the
detectors load.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OUT_DIR = REPO / "detectors" / ".cache" / "int8"
HEADS = {"smollm2-135m": "smollm2", "gemma3-270m": "gemma3"}


def with_output_weights(model_file: Path, out: Path) -> Path:
    """The graph with its output layer's weights stored transposed (the builders tie them to the input
    embedding through a Transpose node, which quantization leaves in float32)."""
    import onnx
    from onnx import numpy_helper

    if out.is_file():
        return out
    model = onnx.load(str(model_file))
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    node = next(n for n in graph.node if n.op_type == "Transpose" and n.input[0] in weights)
    tied = numpy_helper.to_array(weights[node.input[0]])
    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(tied.T), node.output[0]))
    graph.node.remove(node)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def quantize(model_file: Path, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(str(model_file), str(out), per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"])  # fmt: skip
    return out


def statistics(name: str, directory: Path, model_file: Path, texts: list[str]):
    """(features [N, 21], seconds per text of the last pass, the LMStatistics) with `model_file` as the LM."""
    from detectors.lm_features import LMStatistics
    from detectors.lm_train import MAX_TOKENS, SKIP_TOKENS
    from detectors.runtime import open_session

    lm = LMStatistics(name, directory, open_session, MAX_TOKENS, SKIP_TOKENS)
    if model_file != directory / "model.onnx":
        from detectors.likelihood import CausalLM

        lm.lm = CausalLM(model_file, open_session)
    return lm


def timed(lm, texts: list[str]) -> tuple[np.ndarray, float]:
    lm._memo.clear()
    start = time.perf_counter()
    feats = lm.features(texts, batch_size=1)
    return feats, (time.perf_counter() - start) / len(texts)


def perplexity(lm, text: str) -> float:
    stats = lm.token_stats([text], batch_size=1)[0]
    return float(np.exp(-stats[:, 0].mean()))


def main() -> None:
    from scipy.stats import spearmanr

    from detectors.lm_build import CHECK_TEXT, require_built
    from detectors.lm_features import head_logits
    from detectors.lm_heads import columns_for
    from detectors.lm_train import text_sets
    from detectors.runtime import preprocess

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(HEADS))
    ap.add_argument("--texts", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "int8_bench.json")
    args = ap.parse_args()
    sample = text_sets()["sample"][: args.texts]
    texts = [preprocess(r.text, ("collapse_whitespace",)) for r in sample]
    result = {"texts": len(texts), "rounds": args.rounds, "models": {}}
    for name in args.models:
        directory = require_built(name)
        fp32 = directory / "model.onnx"
        untied = with_output_weights(fp32, OUT_DIR / name / "untied.onnx")
        forms = {
            "fp32": fp32,
            "int8 (output layer fp32)": quantize(fp32, OUT_DIR / name / "body.onnx"),
            "int8 (every MatMul)": quantize(untied, OUT_DIR / name / "all.onnx"),
        }
        lms = {form: statistics(name, directory, path, texts) for form, path in forms.items()}
        seconds = {form: [] for form in forms}
        feats = {}
        for _ in range(args.rounds):
            for form, lm in lms.items():
                feats[form], s = timed(lm, texts)
                seconds[form].append(s)
        head = json.loads((REPO / "detectors" / "shipped" / HEADS[name] / "head.json").read_text())
        logit = {form: head_logits(head, columns_for(name, f)) for form, f in feats.items()}
        spread = np.nanstd(feats["fp32"], axis=0) + 1e-9
        rows = {}
        for form, lm in lms.items():
            shift = np.nanmean(np.abs(feats[form] - feats["fp32"]), axis=0) / spread
            rows[form] = {
                "perplexity": round(perplexity(lm, CHECK_TEXT), 2),
                "s_per_text_best": round(min(seconds[form]), 3),
                "speedup_vs_fp32": round(min(seconds["fp32"]) / min(seconds[form]), 2),
                "max_feature_shift_in_sd": round(float(shift.max()), 3),
                "head_logit_spearman": round(float(spearmanr(logit["fp32"], logit[form])[0]), 4),
                "mb": round(forms[form].stat().st_size / 1e6, 1),
            }
            print(name, form, rows[form], flush=True)
        result["models"][name] = rows
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
