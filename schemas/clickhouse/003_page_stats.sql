-- Aggregates by (detector, snapshot, domain, tld, lang, publication day) so shares and
-- their intervals come from here without scanning `pages`.
--   pages:     stored pages (fetched and extracted)
--   excluded:  stored pages left out of shares (too short, unsupported language, empty)
--   documents: distinct contents per snapshot among the scored pages, so an exact
--              duplicate counts once per snapshot
--   hist:      the same distinct documents counted per score bin (50 bins of width
--              0.02); estimators work on these histograms
-- day is 1970-01-01 when the publication date is unknown.
CREATE TABLE IF NOT EXISTS page_stats
(
    detector         LowCardinality(String),
    detector_version LowCardinality(String),
    snapshot         LowCardinality(String),
    domain           LowCardinality(String),
    tld              LowCardinality(String),
    lang             LowCardinality(String),
    day              Date,
    pages            SimpleAggregateFunction(sum, UInt64),
    excluded         SimpleAggregateFunction(sum, UInt64),
    documents        AggregateFunction(uniqExact, UInt64),
    hist             AggregateFunction(uniqExactResample(0, 50, 1), UInt64, UInt8)
)
ENGINE = AggregatingMergeTree
ORDER BY (detector, detector_version, snapshot, domain, tld, lang, day)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS page_stats_mv TO page_stats AS
SELECT
    detector,
    detector_version,
    snapshot,
    domain,
    tld,
    lang,
    ifNull(published, toDate(0)) AS day,
    count() AS pages,
    countIf(is_excluded) AS excluded,
    uniqExactStateIf(doc, NOT is_excluded) AS documents,
    uniqExactResampleStateIf(0, 50, 1)(doc, bin, NOT is_excluded) AS hist
FROM
(
    SELECT
        *,
        excluded != '' AS is_excluded,
        cityHash64(snapshot, content_hash) AS doc,
        least(toUInt8(floor(toFloat64(ifNull(p_synthetic, 0)) * 50 + 1e-4)), 49) AS bin
    FROM pages
)
GROUP BY detector, detector_version, snapshot, domain, tld, lang, day;
