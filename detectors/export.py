"""A local Hugging Face checkpoint directory -> a detector directory (`synthweb detectors export`).

    synthweb detectors export CHECKPOINT_DIR --out DIR [--name N] [--performer CHECKPOINT_DIR2]
    synthweb detectors calibrate DIR FILE.jsonl

A causal LM (GPT2LMHeadModel, or LLaMA-style: Llama/Mistral/Qwen2ForCausalLM; config.json,
model.safetensors, tokenizer.json or vocab.json + merges.txt) becomes a zero-shot "likelihood"
detector: Fast-DetectGPT with one model, Binoculars with a second (performer) model sharing the
tokenizer. A checkpoint directory that already holds a `model.onnx` of a causal LM (an export
without past key values) is used as it is, whatever its architecture. Nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from detectors.runtime import Detector, DetectorError

GPT2_ARCHITECTURES = {"GPT2LMHeadModel", "GPT2Model"}
LLAMA_ARCHITECTURES = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"}
LLAMA_MODEL_TYPES = {"llama", "mistral", "qwen2"}
SAMPLE_TEXT = "The quick brown fox jumps over the lazy dog, and the dog does not seem to mind at all."


def checkpoint_kind(config: dict, checkpoint: Path) -> str:
    """'gpt2', 'onnx' (a ready causal LM graph) or a clear DetectorError for what cannot be exported."""
    archs = [str(a) for a in config.get("architectures") or []]
    model_type = str(config.get("model_type", ""))
    described = (", ".join(archs) or f"model_type {model_type!r}") if (archs or model_type) else "no architecture"
    if any(a.endswith("ForSequenceClassification") for a in archs):
        raise DetectorError(
            f"{checkpoint}: {described} is a sequence classifier; those are exported by the encoder builder "
            "(detectors/encoder.py), not by the causal-LM exporter"
        )
    causal = model_type == "gpt2" or any(a in GPT2_ARCHITECTURES or a.endswith("ForCausalLM") for a in archs)
    if causal and (checkpoint / "model.onnx").is_file():
        return "onnx"
    if model_type == "gpt2" or any(a in GPT2_ARCHITECTURES for a in archs):
        return "gpt2"
    if model_type in LLAMA_MODEL_TYPES or any(a in LLAMA_ARCHITECTURES for a in archs):
        return "llama"
    if causal:
        raise DetectorError(
            f"{checkpoint}: causal LM {described} has no built-in ONNX builder (built in: GPT-2, LLaMA, Mistral, "
            "Qwen2); export it to "
            "model.onnx (input_ids, attention_mask -> logits, no past key values) into the checkpoint directory"
        )
    raise DetectorError(f"{checkpoint}: cannot export {described}: not a causal LM or sequence classifier")


def write_tokenizer(checkpoint: Path, out_file: Path) -> None:
    """Copy tokenizer.json, or build GPT-2's byte-level BPE from vocab.json + merges.txt."""
    if (checkpoint / "tokenizer.json").is_file():
        shutil.copyfile(checkpoint / "tokenizer.json", out_file)
        return
    vocab, merges = checkpoint / "vocab.json", checkpoint / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        raise DetectorError(f"{checkpoint}: no tokenizer.json (nor vocab.json + merges.txt)")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(str(out_file))


def _export_lm(checkpoint: Path, out_file: Path) -> dict:
    from detectors.onnx_gpt2 import export_gpt2
    from detectors.onnx_llama import export_llama
    from detectors.onnx_lm import read_config

    config = read_config(checkpoint)
    kind = checkpoint_kind(config, checkpoint)
    if kind == "onnx":
        shutil.copyfile(checkpoint / "model.onnx", out_file)
        for data in checkpoint.glob("model.onnx*data"):  # external tensors keep their file name
            shutil.copyfile(data, out_file.parent / data.name)
    elif kind == "llama":
        export_llama(checkpoint, out_file)
    else:
        export_gpt2(checkpoint, out_file)
    positions = config.get("n_positions") or config.get("max_position_embeddings")
    return {
        "checkpoint": checkpoint.name,
        "context": int(positions) if positions else None,
        "architectures": config.get("architectures"),
        "model_type": config.get("model_type"),
        "name_or_path": config.get("_name_or_path"),
    }


def _same_vocab(a: Path, b: Path) -> bool:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(a)).get_vocab() == Tokenizer.from_file(str(b)).get_vocab()


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    name: str | None = None,
    performer: str | Path | None = None,
    max_tokens: int = 256,
    languages: tuple[str, ...] = ("en",),
    min_words: int = 50,
) -> Path:
    """Write a likelihood detector directory for the causal LM checkpoint(s); returns its path."""
    checkpoint, out = Path(checkpoint), Path(out)
    if not checkpoint.is_dir():
        raise DetectorError(f"{checkpoint}: not a directory")
    if out.exists() and any(out.iterdir()):
        raise DetectorError(f"{out}: exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    try:
        sources = {"observer": _export_lm(checkpoint, out / "model.onnx")}
        write_tokenizer(checkpoint, out / "tokenizer.json")
        context = sources["observer"]["context"]
        if context and max_tokens > context:  # positions past the context have no embedding
            max_tokens = context
        manifest = {
            "name": name or out.name,
            "version": "1",
            "kind": "likelihood",
            "method": "fast-detectgpt",
            "observer": "model.onnx",
            "tokenizer": "tokenizer.json",
            "max_tokens": int(max_tokens),
            "languages": list(languages),
            "min_words": int(min_words),
        }
        if performer is not None:
            performer = Path(performer)
            sources["performer"] = _export_lm(performer, out / "performer.onnx")
            manifest["max_tokens"] = min(manifest["max_tokens"], sources["performer"]["context"] or max_tokens)
            write_tokenizer(performer, out / "performer-tokenizer.json")
            if not _same_vocab(out / "tokenizer.json", out / "performer-tokenizer.json"):
                raise DetectorError(f"{checkpoint} and {performer} have different tokenizers; Binoculars needs one")
            (out / "performer-tokenizer.json").unlink()
            manifest |= {"method": "binoculars", "performer": "performer.onnx"}
        from detectors.likelihood import DEFAULT_SCORE_MAP

        manifest |= {
            "score_map": DEFAULT_SCORE_MAP[manifest["method"]],
            "description": f"zero-shot {manifest['method']} over causal LMs; uncalibrated until "
            "`synthweb detectors calibrate` is run",
            "source": sources,
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        Detector(out).score([SAMPLE_TEXT])  # the directory must load and score before we call it done
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # never leave a half-written detector behind
        raise
    return out
