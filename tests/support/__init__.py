"""Test support, not installed: a real Kafka broker launcher (broker), crawl and fleet helpers (crawl),
Faust worker processes and store queries (stream). The benches import it too."""
