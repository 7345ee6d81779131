-- Stored pages left out of shares, counted per reason ("short", "unsupported_lang", ...) on the
-- same keys as page_stats, so a report can say why pages of a group were excluded. A table of
-- its own (page_stats keeps one total) so page_stats_mv needs no rewrite; the INSERT backfills
-- pages stored before this migration.
CREATE TABLE IF NOT EXISTS page_exclusions
(
    detector         LowCardinality(String),
    detector_version LowCardinality(String),
    snapshot         LowCardinality(String),
    domain           LowCardinality(String),
    tld              LowCardinality(String),
    lang             LowCardinality(String),
    day              Date,
    reason           LowCardinality(String),
    pages            SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (detector, detector_version, snapshot, domain, tld, lang, day, reason)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS page_exclusions_mv TO page_exclusions AS
SELECT detector, detector_version, snapshot, domain, tld, lang, ifNull(published, toDate(0)) AS day,
       excluded AS reason, count() AS pages
FROM pages
WHERE excluded != ''
GROUP BY detector, detector_version, snapshot, domain, tld, lang, day, reason;

INSERT INTO page_exclusions
SELECT detector, detector_version, snapshot, domain, tld, lang, ifNull(published, toDate(0)) AS day,
       excluded AS reason, count() AS pages
FROM pages
WHERE excluded != ''
GROUP BY detector, detector_version, snapshot, domain, tld, lang, day, reason;
