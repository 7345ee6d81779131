"""Trap guard and private-network address checks (unit level; crawls are in test_crawl_sampleweb)."""

import pytest

from crawler.middlewares import is_public_address
from crawler.traps import TrapGuard


def test_repeated_segments_refused():
    guard = TrapGuard(max_segment_repeats=2, max_query_variants=8)
    assert guard.allows("http://h/a/b/a/")
    assert guard.allows("http://h/a/a/")
    assert guard.refuse_reason("http://h/a/a/a/") == "repeated_segment"
    assert guard.refuse_reason("http://h/x/a/y/a/z/a") == "repeated_segment"


def test_query_variants_bounded_per_host_and_path():
    guard = TrapGuard(max_segment_repeats=2, max_query_variants=3)
    months = [f"http://h/calendar?month=2020-{m:02d}" for m in range(1, 7)]
    assert [guard.allows(u) for u in months] == [True, True, True, False, False, False]
    assert guard.refuse_reason(months[5]) == "query_variants"
    assert guard.allows(months[0])  # an admitted variant stays admitted
    assert guard.allows("http://h/other?month=2020-09")  # another path has its own budget
    assert guard.allows("http://h2/calendar?month=2020-09")  # and another host
    assert guard.allows("http://h/calendar")  # no query at all is fine


@pytest.mark.parametrize(
    "ip,public",
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("127.0.0.5", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("169.254.1.1", False),
        ("100.64.0.1", False),
        ("100.127.255.254", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:93.184.216.34", True),
    ],
)
def test_is_public_address(ip, public):
    assert is_public_address(ip) is public
