-- Two-phase scoring (synthweb/sampling.py, docs/estimation.md): the fast detector scores every page, the
-- strong one a Poisson sample of documents. `inclusion` is the probability with which the row's detector
-- was picked to score its document: 1 for a detector that scores every page (the fast one, single-detector
-- runs, rows stored before this migration); a sampled strong row carries the rate that picked it.
ALTER TABLE pages ADD COLUMN IF NOT EXISTS inclusion Float32 DEFAULT 1;

-- Inclusion probabilities raised after the fact: `synthweb rescore --sample R` lifts every matching
-- document the strong detector already scored at a lower rate to R (the sample key picks a superset).
-- A document's probability is the highest of its rows here and in `pages`.
CREATE TABLE IF NOT EXISTS sample_inclusion
(
    detector         LowCardinality(String),
    detector_version LowCardinality(String),
    snapshot         LowCardinality(String),
    content_hash     String,
    inclusion        SimpleAggregateFunction(max, Float32)
)
ENGINE = AggregatingMergeTree
ORDER BY (detector, detector_version, snapshot, content_hash);
