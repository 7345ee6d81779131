import pytest

from synthweb.seeds import SeedError, normalize_seed, parse_seeds


@pytest.mark.parametrize(
    ("seed", "url"),
    [
        ("example.com", "https://example.com/"),
        ("https://news.example.co.uk/section", "https://news.example.co.uk/section"),
        ("http://127.0.0.2:8080", "http://127.0.0.2:8080/"),
    ],
)
def test_normalize_seed(seed, url):
    assert normalize_seed(seed) == url


@pytest.mark.parametrize(
    "seed", ["ftp://example.com/", "not a url", "http://", "http://x.com:99999/", "localhost", "http://[::1"]
)
def test_malformed_seeds_are_rejected(seed):
    with pytest.raises(SeedError, match="malformed seed"):
        normalize_seed(seed)


def test_seed_file_with_comments_and_duplicates(tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("# news\nexample.com\n\nhttps://example.org/  # blog\nexample.com\n")
    assert parse_seeds([f"@{seeds}", "example.net"]) == [
        "https://example.com/",
        "https://example.org/",
        "https://example.net/",
    ]


def test_missing_seed_file(tmp_path):
    with pytest.raises(SeedError, match="cannot read seed file"):
        parse_seeds([f"@{tmp_path / 'nope.txt'}"])


@pytest.mark.parametrize(
    "seed", ["http://user:s3cret@example.org/", "https://token@example.org/x", "http://:pw@a.example/"]
)
def test_seeds_with_credentials_are_refused_without_echoing_them(seed):
    with pytest.raises(SeedError, match="carries credentials") as refused:
        normalize_seed(seed)
    assert "s3cret" not in str(refused.value) and "token" not in str(refused.value) and "pw" not in str(refused.value)


def test_a_seed_file_that_is_not_utf8_is_one_clear_error(tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_bytes(b"example.com\n\xff\xfe\n")
    with pytest.raises(SeedError, match="not UTF-8"):
        parse_seeds([f"@{seeds}"])
