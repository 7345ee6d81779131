-- Pages that were fetched (or tried) but not stored, with the reason: too large,
-- binary, not HTML, refused private address, redirect loop, HTTP error, ...
CREATE TABLE IF NOT EXISTS skipped_pages
(
    snapshot   LowCardinality(String),
    url        String,
    host       LowCardinality(String),
    domain     LowCardinality(String),
    reason     LowCardinality(String),
    detail     String,
    status     UInt16,
    fetched_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (snapshot, domain, url)
SETTINGS non_replicated_deduplication_window = 10000;
