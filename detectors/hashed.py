"""The fast detector (manifest kind "hashed-ngrams"): a linear model over hashed byte n-grams.

A text is read as UTF-8 bytes, ASCII-lowercased, with whitespace runs collapsed to one
space. Every byte n-gram (n = 1..max_n, max_n <= 4) is hashed into 2**bits buckets; the
score is sigmoid(bias + sum of the n-grams' weights / sqrt(number of n-grams)), i.e.
logistic regression on n-gram counts scaled by 1/sqrt(length).

`model.onnx` holds the whole model (weights as an initializer; inputs `ngram_ids`, `doc_ids`,
`n_ngrams` from `ngram_ids()`) so any ONNX runtime can score it. synthweb scores with a
fused numba kernel that hashes and sums in one pass over the bytes and reads the same
weights: 43,600 400-word docs/s on one core against 4,000 for ORT Gather + ScatterElements on
pre-hashed ids (bench/fast_detector_bench.py; detectors/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

HASH_MULTIPLIER = np.uint32(0x9E3779B1)  # Knuth's multiplicative hash (2**32 / golden ratio)
MAX_N = 4  # n-grams are packed into one uint32


@numba.njit(cache=True, nogil=True, inline="always")
def _bucket(packed, n, shift):
    key = packed if n == 4 else packed & np.uint32((1 << (8 * n)) - 1)
    return np.uint32(key * HASH_MULTIPLIER) >> shift


@numba.njit(cache=True, nogil=True, inline="always")
def _normal_byte(c):
    """-1 for whitespace, else the byte with ASCII upper case lowered."""
    if c == 32 or (9 <= c <= 13):
        return -1
    return c + 32 if 65 <= c <= 90 else c


@numba.njit(cache=True, nogil=True)
def _count_ngrams(data, offsets, max_n):
    counts = np.zeros(len(offsets) - 1, np.int64)
    for d in range(len(offsets) - 1):
        length, pending_space = 0, False
        for i in range(offsets[d], offsets[d + 1]):
            if _normal_byte(data[i]) < 0:
                pending_space = length > 0
                continue
            length += 2 if pending_space else 1
            pending_space = False
        for n in range(1, max_n + 1):
            counts[d] += max(length - n + 1, 0)
    return counts


@numba.njit(cache=True, nogil=True)
def _walk(data, offsets, bits, max_n, weights, ids, doc_ids, sums, counts):
    """One pass over every document's normalised bytes: write ids (if given) or sum weights."""
    shift = np.uint32(32 - bits)
    j = 0
    for d in range(len(offsets) - 1):
        packed, length, pending_space, total, emitted = np.uint32(0), 0, False, 0.0, 0
        for i in range(offsets[d], offsets[d + 1]):
            c = _normal_byte(data[i])
            if c < 0:
                pending_space = length > 0
                continue
            steps = 2 if pending_space else 1
            for step in range(steps):
                b = 32 if step < steps - 1 else c
                packed = (packed << np.uint32(8)) | np.uint32(b)
                length += 1
                for n in range(1, min(length, max_n) + 1):
                    h = _bucket(packed, n, shift)
                    emitted += 1
                    if len(ids):
                        ids[j] = h
                        doc_ids[j] = d
                        j += 1
                    else:
                        total += weights[h]
            pending_space = False
        sums[d] = total
        counts[d] = emitted


def pack(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of all texts, concatenated, and their offsets [N + 1]."""
    blobs = [t.encode("utf-8", "replace") for t in texts]
    offsets = np.zeros(len(blobs) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, blobs), np.int64, len(blobs)), out=offsets[1:])
    return np.frombuffer(b"".join(blobs), np.uint8), offsets


def ngram_ids(texts: list[str], bits: int, max_n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bucket id per n-gram, its text's index, n-grams per text): training features and ONNX inputs."""
    _check(bits, max_n)
    data, offsets = pack(texts)
    counts = _count_ngrams(data, offsets, max_n)
    ids = np.empty(int(counts.sum()), np.int64)
    doc_ids = np.empty(len(ids), np.int64)
    _walk(data, offsets, bits, max_n, np.empty(0, np.float32), ids, doc_ids, np.empty(len(texts)), counts)
    return ids, doc_ids, counts


def linear_scores(texts: list[str], weights: np.ndarray, bias: float, max_n: int) -> np.ndarray:
    """P(machine) per text: sigmoid(bias + sum of n-gram weights / sqrt(n-gram count))."""
    bits = int(np.log2(len(weights)))
    _check(bits, max_n)
    data, offsets = pack(texts)
    sums, counts = np.empty(len(texts)), np.empty(len(texts), np.int64)
    _walk(data, offsets, bits, max_n, weights, np.empty(0, np.int64), np.empty(0, np.int64), sums, counts)
    z = bias + sums / np.sqrt(np.maximum(counts, 1))
    return 1.0 / (1.0 + np.exp(-z))


def _check(bits: int, max_n: int) -> None:
    if not 1 <= max_n <= MAX_N or not 8 <= bits <= 30:
        raise ValueError(f"hashed n-grams need 1 <= max_n <= {MAX_N} and 8 <= bits <= 30, got {max_n}, {bits}")


def onnx_model(weights: np.ndarray, bias: float) -> bytes:
    """The model as ONNX: p_synthetic[N] from ngram_ids[M], doc_ids[M] and n_ngrams[N]."""
    from onnx import TensorProto, checker, helper, numpy_helper

    nodes = [
        helper.make_node("Gather", ["weights", "ngram_ids"], ["ngram_weights"]),
        helper.make_node("Mul", ["n_ngrams", "zero"], ["zeros"]),
        helper.make_node("ScatterElements", ["zeros", "doc_ids", "ngram_weights"], ["sums"], reduction="add"),
        helper.make_node("Max", ["n_ngrams", "one"], ["counts"]),
        helper.make_node("Sqrt", ["counts"], ["norm"]),
        helper.make_node("Div", ["sums", "norm"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p_synthetic"]),
    ]
    vec = lambda name, kind: helper.make_tensor_value_info(name, kind, [None])  # noqa: E731
    graph = helper.make_graph(
        nodes, "hashed_ngrams",
        [vec("ngram_ids", TensorProto.INT64), vec("doc_ids", TensorProto.INT64), vec("n_ngrams", TensorProto.FLOAT)],
        [vec("p_synthetic", TensorProto.FLOAT)],
        [numpy_helper.from_array(np.asarray(weights, np.float32), "weights"),
         numpy_helper.from_array(np.float32(bias), "bias"),
         numpy_helper.from_array(np.float32(0), "zero"), numpy_helper.from_array(np.float32(1), "one")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    checker.check_model(model)
    return model.SerializeToString()


def read_onnx_weights(model_file: Path) -> tuple[np.ndarray, float]:
    """The weights and bias initializers of a model written by `onnx_model`.

    Read with a few lines of protobuf wire format rather than the `onnx` package, whose import alone
    costs 0.8 s of CPU per process (measured), more than scoring 10,000 pages with this detector.
    """
    inits = _float_initializers(model_file.read_bytes())
    return inits["weights"], float(inits["bias"].reshape(-1)[0])


def _fields(buf: bytes | memoryview):
    """(field number, wire type, value) of a protobuf message: ints for varints, memoryviews for bytes."""
    view, i = memoryview(buf), 0
    while i < len(view):
        key, i = _varint(view, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(view, i)
        elif wire == 2:
            size, i = _varint(view, i)
            value, i = view[i : i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = view[i : i + size], i + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _varint(view: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = view[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _float_initializers(model: bytes) -> dict[str, np.ndarray]:
    """The float32 initializers of an ONNX model: ModelProto.graph (7) -> GraphProto.initializer (5) ->
    TensorProto name (8), dims (1), float_data (4) or raw_data (9), data_type (2; 1 is FLOAT)."""
    out = {}
    for number, _, graph in _fields(model):
        if number != 7:
            continue
        for field, _, tensor in _fields(graph):
            if field != 5:
                continue
            name, dims, data, dtype = "", [], b"", 1
            for key, wire, value in _fields(tensor):
                if key == 8:
                    name = bytes(value).decode()
                elif key == 1:
                    dims += [value] if wire == 0 else list(_packed_varints(value))
                elif key in (4, 9):
                    data = bytes(value)
                elif key == 2:
                    dtype = value
            if dtype == 1:
                out[name] = np.frombuffer(data, dtype="<f4").reshape(dims).astype(np.float32)
    return out


def _packed_varints(view: memoryview):
    """The integers of a packed repeated varint field."""
    i = 0
    while i < len(view):
        value, i = _varint(view, i)
        yield value


class HashedScorer:
    """Scorer for kind "hashed-ngrams": the fused kernel over the weights in model.onnx."""

    providers = ["numba-cpu"]

    def __init__(self, path: Path, manifest: dict, make_session=None):
        self.max_n = int(manifest["max_n"])
        self.weights, self.bias = read_onnx_weights(path / manifest["model"])
        bits = int(manifest["bits"])
        if len(self.weights) != 1 << bits:
            raise ValueError(f"{path}: {len(self.weights)} weights, manifest says 2**{bits}")
        _check(bits, self.max_n)

    def score(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return linear_scores(texts, self.weights, self.bias, self.max_n)
