"""Fuzzing the input readers (hypothesis, bounded and derandomized): a clear error or a result, never a traceback.

Found while writing it: `HTTP://Example.com` kept its case, a second spelling of one site (now lowercased).
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthweb.cli.common import CliError, read_jsonl
from synthweb.seeds import SeedError, normalize_seed, parse_seeds

BOUNDED = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
LINE = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda t: json.dumps({"text": t}).encode(), st.text(max_size=50)),  # valid JSON, maybe "\ud800"
    st.builds(lambda t: ('{"text": ' + t + "}").encode("utf-8", "surrogatepass"), st.text(max_size=50)),
    st.sampled_from([b'{"text": "fine"}', b'{"text": 3}', b"[1, 2]", b'{"text": "\\ud800"}', b"", b"\xff\xfe"]),
)


@BOUNDED
@given(lines=st.lists(LINE, max_size=6))
def test_json_lines_give_records_or_one_clear_error(tmp_path, lines):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
    got = []
    try:
        for number, record in read_jsonl(str(path)):
            got.append(number)
            assert isinstance(record["text"], str)
            record["text"].encode("utf-8")  # valid Unicode, no lone surrogates
    except CliError as exc:
        assert str(exc).startswith(f"{path}:") and "\n" not in str(exc)
    assert got == sorted(got)  # lines before a bad one were handed out, in order


SEED = st.one_of(
    st.text(max_size=60),
    st.builds(lambda scheme, host, rest: f"{scheme}{host}{rest}",
              st.sampled_from(["", "http://", "https://", "ftp://", "HTTP://", "//"]),
              st.text(alphabet="abc.-[]:@%1:/", max_size=25), st.text(max_size=15)),
)  # fmt: skip


@BOUNDED
@given(seed=SEED)
def test_a_seed_is_normalised_or_refused_in_one_line(seed):
    try:
        url = normalize_seed(seed)
    except SeedError as exc:
        assert "\n" not in str(exc)
        return
    assert url.startswith(("http://", "https://")) and "@" not in url.split("/")[2]
    assert normalize_seed(url) == url  # idempotent


@BOUNDED
@given(content=st.binary(max_size=300))
def test_a_seed_file_of_any_bytes_is_read_or_refused(tmp_path, content):
    path = tmp_path / "seeds.txt"
    path.write_bytes(content)
    try:
        seeds = parse_seeds([f"@{path}"])
    except SeedError as exc:
        assert "\n" not in str(exc)
        return
    assert all(s.startswith(("http://", "https://")) for s in seeds)


def test_the_fuzz_targets_can_fail():
    with pytest.raises(SeedError):
        normalize_seed("http://[::1")
