-- Resume points of archive ingests (WARC/WET files): one row per committed batch, with the
-- offset of the batch's last record and the offset of its last whole record to seek to (they
-- differ when a file breaks off: the break gets an offset one past the last record). A rerun
-- reads from `resume_at` and skips records up to `record_offset`;
-- written after the batch's pages and skips, so a crash between them re-runs the batch and the
-- insert_deduplication_token of the batch keeps its rows single.
CREATE TABLE IF NOT EXISTS ingest_progress
(
    source        String,
    record_offset Int64,
    resume_at     Int64,
    records       UInt64,
    committed_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (source, record_offset);
