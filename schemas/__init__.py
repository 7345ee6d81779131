"""ClickHouse DDL (clickhouse/NNN_*.sql) and Kafka message schemas (kafka/*.json): the contract between the parts."""
