"""Hugging Face `tokenizer.json` files built from a GGUF file's own tokenizer metadata.

GGUF stores the vocabulary (`tokenizer.ggml.tokens`, `token_type`, and `merges` for byte-level BPE or
`scores` for SentencePiece). The `tokenizers` library runs the result; a text starts with the BOS-like
token the model was trained to see first (`prefix`), so its first real token is scored too.
"""

from __future__ import annotations

import json

from detectors.runtime import DetectorError

CONTROL, USER_DEFINED = 3, 4  # llama.cpp's token types (1 normal, 2 unknown, 5 unused, 6 byte)
# llama.cpp pre-tokenizer names that split every digit apart, then apply GPT-2's byte-level regex.
DIGIT_SPLITTING_PRE = {"smollm", "starcoder", "refact", "codeshell"}


def _added(token_id: int, content: str, special: bool = True) -> dict:
    return {
        "id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
        "normalized": not special, "special": special,
    }  # fmt: skip


def _prefix_processor(prefix: str, prefix_id: int) -> dict:
    return {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": prefix, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {prefix: {"id": prefix, "ids": [prefix_id], "tokens": [prefix]}},
    }


def gpt2_tokenizer_json(meta: dict, prefix: str | None = None) -> str:
    """tokenizer.json for a byte-level BPE vocabulary (`tokenizer.ggml.model` = "gpt2").

    `prefix` (a control token such as "<|endoftext|>") is put before every text by the post-processor.
    """
    if meta.get("tokenizer.ggml.model") != "gpt2":
        raise DetectorError(f"tokenizer model {meta.get('tokenizer.ggml.model')!r} is not byte-level BPE (gpt2)")
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = list(meta.get("tokenizer.ggml.token_type") or [1] * len(tokens))
    merges = list(meta["tokenizer.ggml.merges"])
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    pre = byte_level
    if meta.get("tokenizer.ggml.pre") in DIGIT_SPLITTING_PRE:
        pre = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
    vocab = {t: i for i, t in enumerate(tokens)}
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added(i, t) for i, (t, k) in enumerate(zip(tokens, types, strict=True)) if k == CONTROL],
        "normalizer": None,
        "pre_tokenizer": pre,
        "post_processor": _prefix_processor(prefix, vocab[prefix]) if prefix else None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab, "merges": merges,
        },
    }  # fmt: skip
    return json.dumps(doc, ensure_ascii=False)


NORMAL = 1


def _spm_merges(tokens: list[str], types: list[int], scores: list[float]) -> list[list[str]]:
    """BPE merges rebuilt from SentencePiece scores, as Hugging Face's SentencePieceExtractor does.

    Every split of a token into two tokens of the vocabulary is a merge, ranked by the merged token's
    score, best first. Only normal tokens take part: SentencePiece never merges into or out of control,
    byte or user-defined pieces (those are matched whole, as added tokens, before the model runs).
    """
    normal = {t: i for i, (t, k) in enumerate(zip(tokens, types, strict=True)) if k == NORMAL}
    ranked = []
    for token, i in normal.items():
        # One pass over the split points of each token (not over token pairs: 262k^2 is out of reach).
        splits = [(normal[token[:j]], normal[token[j:]]) for j in range(1, len(token))
                  if token[:j] in normal and token[j:] in normal]  # fmt: skip
        ranked.extend((-scores[i], i, left, right) for left, right in sorted(splits))
    ranked.sort()  # score first; ties in token order, then by the pieces' ids, as HF's stable sort leaves them
    return [[tokens[left], tokens[right]] for _, _, left, right in ranked]


def spm_tokenizer_json(meta: dict, prefix: str | None = "<bos>") -> str:
    """tokenizer.json for a SentencePiece BPE vocabulary (`tokenizer.ggml.model` = "llama"), e.g. Gemma's.

    GGUF keeps no merges for these, only scores; they are rebuilt (`_spm_merges`). Spaces become "▁" (no
    space is prepended unless `tokenizer.ggml.add_space_prefix` says so), characters outside the vocabulary
    fall back to <0xNN> byte tokens, and user-defined tokens (runs of newlines, spaces, tabs; HTML tags)
    are matched whole before the model runs, as SentencePiece does. `prefix` goes before every text.
    """
    if meta.get("tokenizer.ggml.model") != "llama":
        raise DetectorError(f"tokenizer model {meta.get('tokenizer.ggml.model')!r} is not SentencePiece (llama)")
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = list(meta.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens))
    scores = list(meta["tokenizer.ggml.scores"])
    vocab = {t: i for i, t in enumerate(tokens)}
    unk = meta.get("tokenizer.ggml.unknown_token_id")
    replace = {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
    normalizer = replace
    if meta.get("tokenizer.ggml.add_space_prefix", True):  # llama.cpp's default when the key is absent
        normalizer = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, replace]}
    added = [_added(i, t, special=k == CONTROL) for i, (t, k) in enumerate(zip(tokens, types, strict=True))
             if k in (CONTROL, USER_DEFINED)]  # fmt: skip
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": None,
        "post_processor": _prefix_processor(prefix, vocab[prefix]) if prefix else None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
        ]},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": tokens[unk] if unk is not None else None,
            "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
            "byte_fallback": True, "ignore_merges": False, "vocab": vocab, "merges": _spm_merges(tokens, types, scores),
        },
    }  # fmt: skip
    return json.dumps(doc, ensure_ascii=False)
