"""The command-line contract: names, formats, and one-line errors with a non-zero exit."""

import json
import subprocess
import sys

import pytest

from detectors.runtime import SHIPPED
from synthweb.cli import main
from synthweb.estimate import DEFAULT_METHOD


def synthweb(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in its own process (chDB allows one store path per process)."""
    return subprocess.run(
        [sys.executable, "-m", "synthweb.cli", *args], input=stdin, capture_output=True, text=True, timeout=120
    )


HUMAN = (
    "The council met on Tuesday evening to discuss the new bus timetable, which residents say leaves the "
    "northern villages without a service after six. Several people spoke, some angrily, about missed shifts "
    "and children stranded at school. The chair promised a review but gave no date, and the operator did not "
    "send anyone to answer questions, which drew loud complaints from the back of the hall."
)


def test_score_adds_p_synthetic_in_order(tmp_path, capsys):
    lines = [{"id": i, "text": HUMAN[: 100 + 40 * i]} for i in range(5)]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert main(["score", str(path)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["id"] for o in out] == [0, 1, 2, 3, 4]
    assert all(0.0 <= o["p_synthetic"] <= 1.0 for o in out)
    assert out[0]["text"] == lines[0]["text"]


def test_score_reads_stdin():
    result = synthweb("score", "-", stdin=json.dumps({"text": HUMAN}) + "\n")
    assert result.returncode == 0, result.stderr
    assert 0.0 <= json.loads(result.stdout)["p_synthetic"] <= 1.0


def test_score_bad_line_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n{"no_text": 1}\n')
    assert main(["score", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.jsonl:2" in err and "'text'" in err


def test_estimate_prints_one_object(tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    path.write_text(
        "\n".join(json.dumps({"text": HUMAN}) for _ in range(10)) + "\n" + json.dumps({"text": "too short"})
    )
    assert main(["estimate", str(path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"share", "ci_low", "ci_high", "method", "n"} <= set(result)
    from crawler.settings import SYNTHWEB_DETECTOR
    from detectors.runtime import load_detector

    measured = load_detector(SYNTHWEB_DETECTOR).calibration.get("method")  # the default detector's own
    assert result["n"] == 10 and result["excluded"] == 1 and result["method"] == (measured or DEFAULT_METHOD)
    assert 0.0 <= result["ci_low"] <= result["share"] <= result["ci_high"] <= 1.0
    assert main(["estimate", str(path), "--method", "hdy"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "hdy"
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", str(path), "--method", "median"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_unknown_detector_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"text": HUMAN}) + "\n")
    assert main(["score", "--detector", "no-such-detector", str(path)]) == 2
    assert "no-such-detector" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "ftp://example.com/"], "malformed seed"),
        (["run", "@/nonexistent/seeds.txt"], "cannot read seed file"),
        (["report", "--by", "planet"], "unknown dimension"),
        (["run", "--strong-rate", "1.5", "example.org"], "--strong-rate: strong rate must be in (0, 1]"),
        (["run", "--strong-rate", "most", "example.org"], "--strong-rate: strong rate must be a number"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(args, message, tmp_path, capsys):
    assert main([*args, "--db", f"chdb:///{tmp_path}/db"] if args[0] != "run" else args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0


def test_unwritable_store(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = synthweb("run", "--db", f"chdb:///{blocker}/db", "example.com")
    assert result.returncode == 2
    assert "cannot write store" in result.stderr and result.stderr.strip().count("\n") == 0


def test_sql_and_report_on_an_empty_store(tmp_path):
    db = f"chdb:///{tmp_path}/db"
    for command in ("sql", "report"):  # reading a store that is not there is an error, not a new empty store
        missing = synthweb(command, "--db", db, *(["SELECT 1"] if command == "sql" else []))
        assert missing.returncode == 2 and "no store at" in missing.stderr, missing.stderr
    assert synthweb("sql", "--db", db, "--write", "SELECT 1").returncode == 0  # creates (and migrates) it
    result = synthweb("sql", "--db", db, "--format", "json", "SELECT count() AS n FROM pages")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"n": 0}]
    result = synthweb("report", "--db", db, "--by", "domain", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    result = synthweb("sql", "--db", db, "SELECT nonsense FROM nowhere")
    assert result.returncode == 2 and "query failed" in result.stderr


@pytest.mark.parametrize(
    "data, message",
    [(b'{"text": "fine"}\n{"text": "\xff not utf-8"}\n', "in.jsonl:2: not UTF-8"),
     (b'{"text": "a lone \\ud800 surrogate"}\n', "in.jsonl:1: text is not valid Unicode")],
)  # fmt: skip
def test_score_input_that_is_not_unicode_is_one_clear_error(tmp_path, capsys, data, message):
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    assert main(["score", "--detector", "hashed", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0, err


@pytest.mark.parametrize(
    "query",
    ["DROP TABLE page_stats", "SELECT 1; DROP TABLE page_stats", "  insert into pages (url) values ('x')",
     "SELECT 1; ALTER TABLE pages DELETE WHERE 1"],
)  # fmt: skip
def test_sql_is_read_only_unless_asked_to_write(tmp_path, query):
    db = f"chdb:///{tmp_path}/db"
    assert synthweb("sql", "--db", db, "--write", "SELECT 1").returncode == 0  # creates the store
    refused = synthweb("sql", "--db", db, query)
    assert refused.returncode == 2 and "read-only" in refused.stderr and "--write" in refused.stderr, refused.stderr
    assert refused.stderr.strip().count("\n") == 0
    tables = "SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = 'page_stats'"
    assert json.loads(synthweb("sql", "--db", db, "--format", "json", tables).stdout) == [{"n": 1}]
    written = synthweb("sql", "--db", db, "--write", "CREATE TABLE scratch (x UInt8) ENGINE = Memory")
    assert written.returncode == 0, written.stderr


def test_no_share_from_an_uncalibrated_or_mismatched_detector(tmp_path, capsys, detector_copy):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"text": HUMAN}) + "\n")
    uncalibrated = detector_copy("uncalibrated", None)
    assert main(["score", "--detector", uncalibrated, str(path)]) == 0  # scores need no calibration
    capsys.readouterr()
    assert main(["estimate", "--detector", uncalibrated, str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not calibrated" in err and f"synthweb detectors calibrate {uncalibrated}" in err and err.count("\n") == 0

    # A calibration measured on fp32 does not describe an int8 model's scores (quantisation shifts them).
    shipped = json.loads((SHIPPED / "lexical" / "calibration.json").read_text())
    quantised = detector_copy("quantised", shipped | {"variants": {"quantised": ["fp32"]}}, variant="int8")
    assert main(["estimate", "--detector", quantised, str(path)]) == 2
    assert "holds for quantised fp32, but quantised's model is int8" in capsys.readouterr().err
    same = detector_copy("same", shipped | {"variants": {"same": ["fp32", "fp16"]}}, variant="fp16")
    assert main(["estimate", "--detector", same, str(path)]) == 0

    assert synthweb("sql", "--db", f"chdb:///{tmp_path}/db", "--write", "SELECT 1").returncode == 0  # a store
    for chart in ([], ["--chart", str(tmp_path / "shares.png")]):
        result = synthweb("report", "--db", f"chdb:///{tmp_path}/db", "--detector", uncalibrated, *chart)
        assert result.returncode == 2 and "not calibrated" in result.stderr and "Traceback" not in result.stderr
