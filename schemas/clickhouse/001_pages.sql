-- One row per stored page. The main text is kept (compressed) so pages can be re-scored
-- later without recrawling. non_replicated_deduplication_window makes
-- insert_deduplication_token work on this non-replicated table, so a retried batch
-- insert (same token) is stored once.
CREATE TABLE IF NOT EXISTS pages
(
    snapshot         LowCardinality(String),
    url              String,
    host             LowCardinality(String),
    domain           LowCardinality(String),
    tld              LowCardinality(String),
    lang             LowCardinality(String),
    published        Nullable(Date),
    date_source      LowCardinality(String),
    fetched_at       DateTime64(3, 'UTC'),
    status           UInt16,
    title            String CODEC(ZSTD(3)),
    text             String CODEC(ZSTD(6)),
    content_hash     String,
    word_count       UInt32,
    detector         LowCardinality(String),
    detector_version LowCardinality(String),
    p_synthetic      Nullable(Float32),
    excluded         LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(fetched_at)
ORDER BY (domain, snapshot, url)
SETTINGS non_replicated_deduplication_window = 10000;
