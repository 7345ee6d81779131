"""`scrapy crawl`, exiting 1 when a spider stopped on a failure (as `synthweb crawler` does).

Scrapy's own command exits 0 unless the crawler failed to start, so `scrapy crawl fleet` reported
success after pages went undelivered; a supervisor (Kubernetes, systemd) must see the failure.
"""

from __future__ import annotations

from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.exceptions import UsageError


class Command(ScrapyCrawl):
    def run(self, args: list[str], opts) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one spider name")
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        failure = getattr(crawler.spider, "failure", "")  # FleetSpider's reason for stopping early
        if self.crawler_process.bootstrap_failed or failure:
            self.exitcode = 1
