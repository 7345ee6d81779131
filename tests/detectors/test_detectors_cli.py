"""`synthweb detectors list` and `synthweb detectors eval`."""

import json
import shutil

import pytest

from detectors.evaluation import evaluate, length_bucket, parse_label
from synthweb.cli import main

HUMAN = (
    "The council met on Tuesday evening to discuss the new bus timetable, which residents say leaves the northern "
    "villages without a service after six. Several people spoke, some angrily, about missed shifts and children "
    "stranded at school, and the chair promised a review but gave no date."
)
MACHINE = (
    "In today's fast-paced world, it is important to note that effective communication plays a crucial role in "
    "fostering collaboration. Furthermore, by leveraging innovative strategies, organizations can unlock new "
    "opportunities and drive sustainable growth across a wide range of industries."
)


def labelled(path, n=12):
    lines = []
    for i in range(n):
        domain = "news" if i % 2 else "blog"
        lines.append({"text": f"{HUMAN} Item {i}.", "label": "human", "domain": domain})
        lines.append({"text": f"{MACHINE} Point {i}. " * (1 + i % 3), "label": "machine", "domain": domain,
                      "generator": "gpt-x" if i % 3 else "gpt-y"})  # fmt: skip
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_eval_json_has_every_slice(tmp_path, capsys):
    assert (
        main(["detectors", "eval", str(labelled(tmp_path / "e.jsonl")), "--detector", "lexical", "--format", "json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["detector"] == "lexical" and out["version"] == "1"
    slices = {row["slice"]: row for row in out["slices"]}
    assert {"all", "domain=blog", "domain=news", "generator=gpt-x", "generator=gpt-y"} <= set(slices)
    assert any(name.startswith("length=") for name in slices)
    assert (slices["all"]["n_human"], slices["all"]["n_machine"]) == (12, 12)
    assert slices["generator=gpt-y"]["n_machine"] == 4 and slices["generator=gpt-y"]["n_human"] == 12
    for row in out["slices"]:
        for metric in ("auroc", "tpr@1%fpr", "tpr@5%fpr"):
            assert row[metric] is None or 0.0 <= row[metric] <= 1.0
    assert slices["all"]["auroc"] > 0.9  # these two styles are easy to tell apart


def test_eval_table(tmp_path, capsys):
    # The table's layout does not depend on the detector; the default's quality is the gate's (test_gate.py).
    assert main(["detectors", "eval", str(labelled(tmp_path / "e.jsonl")), "--detector", "lexical"]) == 0
    out = capsys.readouterr().out
    assert "auroc" in out and "tpr@5%fpr" in out and "domain=news" in out


@pytest.mark.parametrize(
    "lines, message",
    [
        ([{"text": HUMAN, "label": "human"}, {"text": MACHINE, "label": "robot"}], ":2: label must be"),
        ([{"text": HUMAN, "label": "human"}], "need both human and machine"),
    ],
)
def test_eval_bad_input_is_a_one_line_error(tmp_path, capsys, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    assert main(["detectors", "eval", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0


def test_list_shows_shipped_and_search_path_detectors(tmp_path, monkeypatch, capsys):
    from detectors.runtime import SHIPPED

    copy = tmp_path / "lexical-copy"
    shutil.copytree(SHIPPED / "lexical", copy, ignore=shutil.ignore_patterns("*.onnx"))
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["calibration"]
    (copy / "manifest.json").write_text(json.dumps({**manifest, "name": "lexical-copy", "version": "9"}))
    monkeypatch.setenv("SYNTHWEB_DETECTORS_PATH", str(tmp_path))
    assert main(["detectors", "list", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["lexical"]["version"] == "1" and rows["lexical"]["languages"] == "en"
    assert rows["lexical"]["kind"] == "onnx-text" and rows["lexical"]["min_words"] == 50
    assert rows["lexical-copy"]["version"] == "9" and rows["lexical-copy"]["path"] == str(copy)
    assert rows["lexical"]["calibrated"] and not rows["lexical-copy"]["calibrated"]


def test_labels_and_length_buckets():
    assert [parse_label(v) for v in ("human", "Machine", 0, 1)] == [0, 1, 0, 1]
    with pytest.raises(ValueError):
        parse_label(True)
    assert [length_bucket("w " * n) for n in (10, 100, 249, 250)] == ["<100", "100-250", "100-250", "250+"]


def test_generator_slice_uses_humans_of_its_domains():
    records = [
        {"text": "a", "label": 0, "domain": "x"},
        {"text": "b", "label": 0, "domain": "y"},
        {"text": "c", "label": 1, "domain": "x", "generator": "g"},
    ]
    rows = {r["slice"]: r for r in evaluate(records, [0.1, 0.9, 0.8])}
    assert (rows["generator=g"]["n_human"], rows["generator=g"]["n_machine"]) == (1, 1)
    assert rows["domain=y"]["auroc"] is None  # one class only: no metric rather than a wrong one
