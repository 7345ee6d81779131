"""The one settings module of synthweb: Scrapy's settings plus the SYNTHWEB_* ones.

The crawler, the embedded pipeline and the Faust workers all read this module
(through `synthweb.config.load_settings()`; `scrapy crawl` through the spiders' `update_settings`),
so a deployment changes behaviour in one place. Values here are plain constants: nothing is
read when the module is imported. An environment variable named like a SYNTHWEB_* setting
(e.g. SYNTHWEB_DB, SYNTHWEB_BATCH_SIZE) overrides it, converted to the type of the value here, and
SYNTHWEB_USER_AGENT / SYNTHWEB_LOG_LEVEL set USER_AGENT / LOG_LEVEL: synthweb.config applies them
when settings are loaded.
"""

BOT_NAME = "synthweb"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
COMMANDS_MODULE = "crawler.commands"  # `scrapy crawl` exits 1 when a spider stopped on a failure

# --- politeness -------------------------------------------------------------
# Identify ourselves; operators of crawled sites must be able to reach us.
USER_AGENT = "synthweb/0.1 (+https://github.com/synthweb/synthweb; research crawler)"
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 32
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 0.25
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.25
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_TIMEOUT = 30
RETRY_TIMES = 2
REDIRECT_MAX_TIMES = 10
DOWNLOAD_MAXSIZE = 10 * 1024 * 1024  # bigger pages are recorded as skipped
DOWNLOAD_WARNSIZE = 0
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
DEPTH_LIMIT = 8
DEPTH_PRIORITY = 1  # breadth-first: a page budget then covers the top of a site
SCHEDULER_DISK_QUEUE = "scrapy.squeues.PickleFifoDiskQueue"
SCHEDULER_MEMORY_QUEUE = "scrapy.squeues.FifoMemoryQueue"
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
LOG_LEVEL = "WARNING"

# --- synthweb ---------------------------------------------------------------
# Where results go: chdb:///path (embedded, default) or http(s)://user:pass@host:port/db.
SYNTHWEB_DB = "chdb:///./synthweb-data"
# An embedded store that several local processes (Faust workers) write to: each holds it per batch under a file
# lock (synthweb.store.Store.turn), so their batches take turns. Servers need none of it.
SYNTHWEB_DB_SHARED = False
# The default is the detector with the best mean held-out AUROC (detectors/README.md): the zero-shot statistics
# of SmolLM2 and Gemma 3, whose graphs `synthweb detectors build` makes (scripts/setup.sh runs it); "lexical"
# is ~1000x faster on CPU.
SYNTHWEB_DETECTOR = "zeroshot"  # the strong detector: shares are its, corrected by its calibration
# Two-phase scoring (docs/estimation.md): the fast detector scores every page, the strong one a reproducible
# sample of documents at SYNTHWEB_STRONG_RATE (a number in (0, 1], or "auto": keep the strong detector's CPU
# within SYNTHWEB_STRONG_BUDGET of the rest of the job's, every (snapshot, domain) stratum getting at least
# SYNTHWEB_STRONG_MIN_DOCUMENTS strong-scored documents; every page on a GPU). "" scores with one detector.
SYNTHWEB_FAST_DETECTOR = "hashed"
SYNTHWEB_STRONG_RATE = "auto"
SYNTHWEB_STRONG_MIN_DOCUMENTS = 30
SYNTHWEB_STRONG_BUDGET = 0.5
SYNTHWEB_BATCH_SIZE = 64  # pages per scoring batch and per ClickHouse insert
# Seconds between tries of a failing batch (or dead letter); the last one repeats while the store or Kafka is away.
# After the last, the batch is tried page by page: a page failing alone is dead-lettered (worker) or counted failed
# (embedded). While every page fails alone the worker retries forever (Kafka keeps the pages); the embedded crawl
# waits too, with the crawl held, and stops after SYNTHWEB_STORE_GIVE_UP_SECONDS with a clear error.
SYNTHWEB_RETRY_SECONDS = [0.5, 1.0, 2.0, 5.0]
SYNTHWEB_STORE_GIVE_UP_SECONDS = 300.0
SYNTHWEB_SNAPSHOT = ""  # filled per run; pages of one run share it
SYNTHWEB_MAX_PAGES_PER_SITE = 200
SYNTHWEB_ALLOW_PRIVATE_NETWORKS = False
# Trap guards: a path segment repeated more often than this, or more query variants
# of one path than this, is not followed (calendars, session ids, faceted search).
SYNTHWEB_MAX_SEGMENT_REPEATS = 2
SYNTHWEB_MAX_QUERY_VARIANTS = 8
# Links followed per page: the first N of a link farm (counted as links_capped in the crawl summary); 0: all.
SYNTHWEB_MAX_LINKS_PER_PAGE = 2000
# HTML longer than this (characters) is recorded as skip too_large instead of extracted: trafilatura and htmldate
# took 820 MB and 13 s on a 9.4 MB page of 200,000 links (README "Bounded work").
SYNTHWEB_MAX_EXTRACT_CHARS = 3_000_000
# The stages that follow fetching, in order; shared by the embedded and Faust paths.
SYNTHWEB_STAGES = [
    "crawler.extract.ExtractStage",
    "synthweb.score.ScoreStage",
    "synthweb.store.StoreStage",
]
# The embedded `synthweb run` clusters the snapshot's near-duplicates when the crawl ends (synthweb.dedup).
SYNTHWEB_DEDUP = True
# Robots.txt Crawl-delay is honoured up to this many seconds (a bigger one would stall a site).
SYNTHWEB_MAX_CRAWL_DELAY = 60.0

# --- distributed mode (Kafka + Faust) --------------------------------------------
SYNTHWEB_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
SYNTHWEB_TOPIC_JOBS = "crawl.jobs"
SYNTHWEB_TOPIC_PAGES = "pages.raw"
SYNTHWEB_TOPIC_DEAD = "pages.dead"
SYNTHWEB_TOPIC_PARTITIONS = 6
# A raw page carries its HTML (up to DOWNLOAD_MAXSIZE); messages may be that big plus envelope.
SYNTHWEB_MAX_MESSAGE_BYTES = 12 * 1024 * 1024
SYNTHWEB_CRAWLER_GROUP = "synthweb-crawlers"
# A crawler must finish one site within this long, or its job is handed to another crawler.
SYNTHWEB_MAX_JOB_SECONDS = 1800
# A crawler that stops heartbeating (killed, hung) for this long leaves the group and its job goes to
# another crawler; the broker allows 6-1800 s by default (group.min/max.session.timeout.ms).
SYNTHWEB_CRAWLER_SESSION_SECONDS = 45.0
# Faust app id = Kafka consumer group of the workers.
SYNTHWEB_WORKER_GROUP = "synthweb-workers"
# Faust's own state directory (tables live in memory; Faust still keeps a version marker there).
SYNTHWEB_WORKER_DATADIR = "synthweb-worker-data"
# pages per take_events batch in the Faust worker (and per ClickHouse insert) ...
SYNTHWEB_WORKER_BATCH_SIZE = 64
SYNTHWEB_WORKER_BATCH_SECONDS = 2.0  # ... or fewer after this
# The worker's web server (GET /metrics for Prometheus).
SYNTHWEB_WORKER_WEB_PORT = 6066
SYNTHWEB_WORKER_WEB_BIND = "0.0.0.0"
# Seconds without heartbeats before a crashed worker's partitions are handed to the others.
SYNTHWEB_WORKER_SESSION_TIMEOUT = 30.0
# Snapshot schedule for the Faust crontab: a JSON file of {"name", "cron", "seeds"} entries.
SYNTHWEB_SCHEDULE = ""

# --- history: archives, Wayback Machine, sitemaps ------------------------------
# s3:// sources are read over plain HTTPS from public buckets; set an endpoint (https://host)
# to read s3://bucket/key as <endpoint>/bucket/key instead (a mirror, a local test server).
SYNTHWEB_S3_ENDPOINT = ""
SYNTHWEB_WAYBACK_CDX_URL = "https://web.archive.org/cdx/search/cdx"
SYNTHWEB_WAYBACK_FETCH_URL = ""  # default: <CDX origin>/web
SYNTHWEB_WAYBACK_RATE = 1.0  # requests per second
SYNTHWEB_WAYBACK_RETRIES = 4  # on 429, 5xx, timeouts and connection errors
SYNTHWEB_WAYBACK_BACKOFF = 2.0  # seconds, doubled per retry
# Sitemaps (robots.txt Sitemap: lines, else /sitemap.xml): lastmod dates pages that carry none.
SYNTHWEB_SITEMAPS = True
SYNTHWEB_MAX_SITEMAPS_PER_SITE = 20

# --- components ---------------------------------------------------------------
DOWNLOADER_MIDDLEWARES = {
    # Before robots.txt (100): a refused host gets neither its page nor its robots.txt fetched.
    "crawler.middlewares.PrivateNetworkGuard": 50,
    # Scrapy's robots.txt middleware plus Crawl-delay.
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "crawler.middlewares.RobotsCrawlDelayMiddleware": 100,
}
EXTENSIONS = {
    # AutoThrottle that keeps Crawl-delay as a floor.
    "scrapy.extensions.throttle.AutoThrottle": None,
    "crawler.middlewares.CrawlDelayAutoThrottle": 0,
    # /metrics, /healthz, /readyz on SYNTHWEB_CRAWLER_METRICS_PORT (off unless set; the fleet manifests set it).
    "crawler.metrics.CrawlerMetrics": 500,
}
SYNTHWEB_CRAWLER_METRICS_PORT = 0
SYNTHWEB_CRAWLER_METRICS_HOST = "0.0.0.0"
ITEM_PIPELINES = {"crawler.pipelines.StagesPipeline": 300}
