"""``consentflow.producer``, kept for the imports written before the package took its layout (issue 20):
``EventProducer``, the idempotent producer of events, now in ``consentflow.kafka.producer``."""

from consentflow.kafka.producer import DEFAULT_BOOTSTRAP, DEFAULT_PREFIX, DeliveryError, EventProducer

__all__ = ["DEFAULT_BOOTSTRAP", "DEFAULT_PREFIX", "DeliveryError", "EventProducer"]
