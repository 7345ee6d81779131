"""`scrapy crawl`, exiting 1 when a spider stopped on a failure (as `synthweb crawler` does).

Scrapy's own command exits 0 unless the crawler failed to start, so `scrapy crawl fleet` reported
success after pages went undelivered; a supervisor (Kubernetes, systemd) must see the failure.
"""

from __future__ import annotations

from scrapy.commands.crawl import Command as ScrapyCrawl


class Command(ScrapyCrawl):
    def _create_crawler(self, spidercls):
        # Kept to read the spider's verdict after the run: the process forgets finished crawlers.
        self.crawler = super()._create_crawler(spidercls)
        return self.crawler

    def run(self, args: list[str], opts) -> None:
        super().run(args, opts)
        if getattr(self.crawler.spider, "failure", ""):  # FleetSpider's reason for stopping early
            self.exitcode = 1
