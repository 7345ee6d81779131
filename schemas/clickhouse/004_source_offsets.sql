-- Where a row came from in Kafka (topic/partition and offset; '' and -1 in embedded mode).
-- A Faust worker that takes over a partition skips messages at or below the highest
-- offset already stored for it, so a batch redelivered after a crash is not counted twice
-- even when it is regrouped differently (the insert_deduplication_token covers exact retries).
ALTER TABLE pages ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '';
ALTER TABLE pages ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1;
ALTER TABLE skipped_pages ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '';
ALTER TABLE skipped_pages ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1;
