-- Near-duplicate documents (synthweb/neardup.py, synthweb/dedup.py, docs/near-duplicates.md).
-- A document is (snapshot, content_hash). `synthweb dedup` signs each stored document once: a MinHash
-- signature of its words, empty for a text too short to sign. `params` names how signatures were made
-- (shingles, permutations, seed, library), so signatures made differently are never compared.
CREATE TABLE IF NOT EXISTS minhash_signatures
(
    snapshot     LowCardinality(String),
    params       LowCardinality(String),
    content_hash String,
    signature    Array(UInt32) CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
ORDER BY (snapshot, params, content_hash);

-- One row per dedup run of a snapshot; readers take each snapshot's latest run.
CREATE TABLE IF NOT EXISTS dedup_runs
(
    snapshot                 LowCardinality(String),
    run                      DateTime64(3, 'UTC'),
    params                   String,
    threshold                Float32,
    documents                UInt64,  -- stored documents of the snapshot
    signed                   UInt64,  -- of them, long enough to sign
    clusters                 UInt64,  -- clusters of two or more documents
    near_duplicate_documents UInt64,  -- documents in a cluster that spans two or more domains
    seconds                  Float64
)
ENGINE = MergeTree
ORDER BY (snapshot, run);

-- A run's clusters: a row per document in a cluster of two or more documents, or whose content is on two or
-- more domains. A document of a deduplicated snapshot without a row is a cluster of its own.
CREATE TABLE IF NOT EXISTS near_duplicates
(
    snapshot        LowCardinality(String),
    run             DateTime64(3, 'UTC'),
    content_hash    String,
    cluster         String,  -- the cluster's smallest content_hash
    cluster_size    UInt32,  -- documents in the cluster
    cluster_domains UInt32   -- distinct domains of the cluster's pages
)
ENGINE = MergeTree
ORDER BY (snapshot, run, content_hash);

CREATE VIEW IF NOT EXISTS latest_near_duplicates AS
SELECT snapshot, content_hash, cluster, cluster_size, cluster_domains
FROM near_duplicates
WHERE (snapshot, run) IN (SELECT snapshot, max(run) FROM dedup_runs GROUP BY snapshot);

-- Each page of a deduplicated snapshot with its cluster, the cluster's size and its number of domains.
CREATE VIEW IF NOT EXISTS page_clusters AS
SELECT
    p.snapshot AS snapshot,
    p.url AS url,
    p.domain AS domain,
    p.content_hash AS content_hash,
    if(n.cluster = '', p.content_hash, n.cluster) AS cluster,
    if(n.cluster = '', toUInt32(1), n.cluster_size) AS cluster_size,
    if(n.cluster = '', toUInt32(1), n.cluster_domains) AS cluster_domains
FROM (SELECT DISTINCT snapshot, url, domain, content_hash FROM pages WHERE snapshot IN (SELECT snapshot FROM dedup_runs)) AS p
LEFT JOIN latest_near_duplicates AS n ON p.snapshot = n.snapshot AND p.content_hash = n.content_hash;

-- `synthweb layers --record`: each domain's layer per period as the command computed it (its share's 95%
-- interval against the cut), for dashboards. Readers take the latest `recorded` per period kind.
CREATE TABLE IF NOT EXISTS domain_layers
(
    recorded                 DateTime64(3, 'UTC'),
    period_kind              LowCardinality(String),  -- snapshot, year or month
    period                   String,
    domain                   LowCardinality(String),
    layer                    LowCardinality(String),  -- human, uncertain, synthetic
    cut                      Float32,
    documents                UInt64,
    near_duplicate_documents Nullable(UInt64),
    share                    Nullable(Float64),
    ci_low                   Nullable(Float64),
    ci_high                  Nullable(Float64),
    detector                 LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (period_kind, recorded, period, domain);
