"""Language identification: py3langid, its model read from a decompressed copy in the user's cache.

py3langid ships its model LZMA-compressed (4.6 MB; 68 MB of arrays) and decompresses it in every process
that classifies a text: 0.55 s of CPU, measured against ~6 s for the whole of a 600-page crawl
(bench/stage_profile.py). Reading the decompressed copy costs ~0.13 s. The copy is written once, atomically,
to $SYNTHWEB_CACHE/py3langid (default ~/.cache/synthweb/py3langid), named by py3langid's version and its
model file's size and time, so an upgrade writes a new one. Where the cache cannot be read or written, the
model loads as py3langid loads it: slower, never wrong.
"""

from __future__ import annotations

import io
import logging
import lzma
import os
import tempfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

# The first few thousand characters are plenty and keep classification fast.
CLASSIFY_CHARS = 5000


def cache_dir() -> Path:
    root = os.environ.get("SYNTHWEB_CACHE") or Path.home() / ".cache" / "synthweb"
    return Path(root).expanduser() / "py3langid"


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, by py3langid over its first `CLASSIFY_CHARS` characters."""
    lang, _score = identifier().classify(text[:CLASSIFY_CHARS])
    return lang


@lru_cache(maxsize=1)
def identifier():
    """py3langid's `LanguageIdentifier` (all languages, raw scores: what `py3langid.classify` uses)."""
    from py3langid import langid

    try:
        return _from_arrays(_model_arrays(langid.MODEL_DIR / langid.MODEL_FILE))
    except Exception as exc:  # a py3langid whose internals moved: its own loader still works
        log.warning("py3langid model cache unusable (%s): loading the compressed model", exc)
        return langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE)


def _model_arrays(source: Path):
    """The model's arrays, from the decompressed copy (written now if missing or unreadable)."""
    import numpy as np

    stat = source.stat()
    name = f"model-{metadata.version('py3langid')}-{stat.st_size}-{int(stat.st_mtime)}.npz"
    cached = cache_dir() / name
    try:
        with np.load(cached, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception:  # noqa: BLE001 - missing, cut short, not a zip: decompress and write it again
        pass
    raw = lzma.decompress(source.read_bytes())
    tmp = None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cached.parent, prefix=".model-", delete=False) as tmp:
            tmp.write(raw)
        os.replace(tmp.name, cached)  # atomic: a concurrent reader sees the whole file or none
    except OSError as exc:
        log.info("py3langid model not cached at %s: %s", cached.parent, exc.strerror or exc)
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _from_arrays(arrays):
    """The identifier from the model's arrays, converted as py3langid 0.4's `modelio.load_model` does."""
    import numpy as np
    from py3langid import langid, modelio

    return langid.LanguageIdentifier(
        np.asarray(arrays["ptc"]),
        np.asarray(arrays["pc"]),
        arrays["classes"].tolist(),
        modelio._to_array(arrays["nextmove"]),
        arrays["out_feat"].tolist(),
        tk_row=modelio._to_array(arrays["nextmove_row"]),
    )
