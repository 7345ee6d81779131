-- The calibration of each detector version that scored pages into this store, written by the
-- store stage when it starts (and by rescore), so SQL and Grafana can correct shares without the
-- detector's files. The newest row per (detector, detector_version) wins: a recalibrated detector
-- keeps its version (its scores did not change), only its reference histograms did.
--   threshold_bin, tpr, fpr:  adjusted classify-and-count (ACC):
--       share = (flagged - fpr) / (tpr - fpr), flagged = documents in bins >= threshold_bin / documents
--   mean_human, mean_machine: probabilistic ACC (PACC), each bin at its midpoint (bin + 0.5) / 50:
--       share = (mean - mean_human) / (mean_machine - mean_human), clipped to [0, 1]
--   hist_human, hist_machine: the validation histograms themselves (documents per bin), and
--       effective_*: how many independent documents they are worth (article groups counted once)
CREATE TABLE IF NOT EXISTS detector_calibrations
(
    detector          LowCardinality(String),
    detector_version  LowCardinality(String),
    threshold         Float64,
    threshold_bin     UInt8,
    tpr               Float64,
    fpr               Float64,
    mean_human        Float64,
    mean_machine      Float64,
    hist_human        Array(Float64),
    hist_machine      Array(Float64),
    effective_human   Float64,
    effective_machine Float64,
    method            LowCardinality(String),
    recorded          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(recorded)
ORDER BY (detector, detector_version);
