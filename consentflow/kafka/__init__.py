"""Kafka transport: the producer, topic creation, lag, client configuration and logs, the broker's view of groups."""
