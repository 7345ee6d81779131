"""A real Kafka broker: kafka-python round trips and consumer-group redelivery."""

import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

pytestmark = pytest.mark.kafka


def _topic(kafka, partitions=1):
    name = f"test-{uuid.uuid4().hex[:8]}"
    kafka.create_topics([name], partitions=partitions)
    return name


def _produce(kafka, topic, values, **configs):
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5, **configs)
    try:
        for i, value in enumerate(values):
            producer.send(topic, key=str(i).encode(), value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def _consumer(kafka, topic, group):
    return KafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )


def _read(consumer, n):
    got = []
    for message in consumer:
        got.append(message)
        if len(got) == n:
            break
    return got


def test_broker_is_loopback_only(kafka):
    host, port = kafka.bootstrap.split(":")
    assert host == "127.0.0.1" and int(port) > 0
    admin = kafka.admin()
    try:
        brokers = admin.describe_cluster()["brokers"]
    finally:
        admin.close()
    assert [(b["host"], b["port"]) for b in brokers] == [("127.0.0.1", int(port))]


@pytest.mark.parametrize("compression", ["gzip", "lz4"])
def test_round_trip(kafka, compression):
    topic = _topic(kafka, partitions=2)
    values = [f"page-{i}".encode() for i in range(20)]
    _produce(kafka, topic, values, compression_type=compression)

    consumer = _consumer(kafka, topic, group=f"g-{topic}")
    try:
        got = _read(consumer, len(values))
        consumer.commit()
        committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in (0, 1))
    finally:
        consumer.close()
    assert sorted(m.value for m in got) == sorted(values)
    assert {m.key: m.value for m in got} == {str(i).encode(): v for i, v in enumerate(values)}
    assert committed == len(values)


def test_group_redelivers_uncommitted(kafka):
    topic = _topic(kafka)
    values = [f"doc-{i}".encode() for i in range(10)]
    _produce(kafka, topic, values)
    group = f"g-{topic}"

    first = _consumer(kafka, topic, group)
    try:
        assert [m.value for m in _read(first, len(values))] == values  # read, but never commit
    finally:
        first.close(autocommit=False)

    second = _consumer(kafka, topic, group)
    try:
        assert [m.value for m in _read(second, len(values))] == values  # same group gets them again
        second.commit()
    finally:
        second.close()

    third = _consumer(kafka, topic, group)
    try:
        _produce(kafka, topic, [b"after-commit"])
        assert [m.value for m in _read(third, 1)] == [b"after-commit"]  # committed offsets are respected
    finally:
        third.close()


def test_missing_jars_fail_clearly(tmp_path):
    from tests.support.broker import KafkaBroker, KafkaBrokerError, java_executable

    if java_executable() is None:
        pytest.skip("java not found")
    with pytest.raises(KafkaBrokerError, match="fetch.sh"):
        KafkaBroker(libs=tmp_path).start()
