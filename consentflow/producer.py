"""``consentflow.producer``, kept for the imports written before the package took its layout (issue 20): EventProducer, the idempotent producer of events,
now in ``consentflow.kafka.producer``."""

from consentflow.kafka.producer import (
    DEFAULT_BOOTSTRAP as DEFAULT_BOOTSTRAP,
)
from consentflow.kafka.producer import (
    DEFAULT_PREFIX as DEFAULT_PREFIX,
)
from consentflow.kafka.producer import (
    DeliveryError as DeliveryError,
)
from consentflow.kafka.producer import (
    EventProducer as EventProducer,
)
