"""Trap guard and private-network address checks (unit level; crawls are in test_crawl_sampleweb)."""

import pytest

from crawler.middlewares import address_allowed, is_public_address, same_site
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


@pytest.mark.parametrize(
    "ip, public, private_allowed",
    [
        ("93.184.216.34", True, True),
        ("127.0.0.1", False, True),
        ("10.1.2.3", False, True),
        ("100.64.0.1", False, True),
        ("169.254.169.254", False, False),  # cloud metadata: never, whatever the flag says
        ("169.254.10.10", False, False),  # any link-local
        ("fd00:ec2::254", False, False),
        ("100.100.100.200", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("fe80::1", False, False),
        ("224.0.0.1", False, False),
        ("0.0.0.0", False, False),
    ],
)
def test_one_address_policy(ip, public, private_allowed):
    assert address_allowed(ip) is public
    assert address_allowed(ip, allow_private=True) is private_allowed


def test_redirects_stay_on_the_site():
    assert same_site("http://example.com/a", "https://www.example.com/b")
    assert not same_site("http://example.com/a", "http://example.org/a")
    assert same_site("http://127.0.0.2:8000/a", "http://127.0.0.2:8000/b")
    assert not same_site("http://127.0.0.2:8000/a", "http://127.0.0.2:9000/a")  # another service on the host


def _guard(allow_private: bool):
    from scrapy.utils.test import get_crawler

    from crawler.middlewares import PrivateNetworkGuard

    return PrivateNetworkGuard(get_crawler(settings_dict={"SYNTHWEB_ALLOW_PRIVATE_NETWORKS": allow_private}))


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://metadata.google.internal/"]
)
def test_the_guard_refuses_metadata_services_even_when_private_networks_are_allowed(url):
    """Decided on the address (or the well-known name) before any connection: no socket is opened here."""
    import asyncio

    from scrapy import Request

    from crawler.middlewares import PrivateNetworkRefused

    for allow in (False, True):
        with pytest.raises(PrivateNetworkRefused):
            asyncio.run(_guard(allow).process_request(Request(url)))


def test_the_guard_refuses_an_offsite_redirect_hop():
    import asyncio

    from scrapy import Request

    from crawler.middlewares import OffsiteRedirectRefused

    hop = Request("http://127.0.0.3:9000/elsewhere", meta={"redirect_urls": ["http://127.0.0.2:8000/start"]})
    with pytest.raises(OffsiteRedirectRefused):
        asyncio.run(_guard(True).process_request(hop))
    same = Request("http://127.0.0.2:8000/next", meta={"redirect_urls": ["http://127.0.0.2:8000/start"]})
    assert asyncio.run(_guard(True).process_request(same)) is None


def test_credentials_in_a_link_or_redirect_are_dropped_before_the_request_goes_out():
    import asyncio

    from scrapy import Request

    again = asyncio.run(_guard(True).process_request(Request("http://user:s3cret@127.0.0.2:8000/page?q=1")))
    assert again.url == "http://127.0.0.2:8000/page?q=1"
    assert asyncio.run(_guard(True).process_request(again)) is None  # the rewritten request passes
