"""``consentflow.eventfile``, kept for the imports written before the package took its layout (issue 20): event files (Avro container, JSON Lines),
now in ``consentflow.contracts.eventfile``."""

from consentflow.contracts.eventfile import (
    READING_STOPPED as READING_STOPPED,
)
from consentflow.contracts.eventfile import (
    ReadingStopped as ReadingStopped,
)
from consentflow.contracts.eventfile import (
    input_union_document as input_union_document,
)
from consentflow.contracts.eventfile import (
    input_union_schema as input_union_schema,
)
from consentflow.contracts.eventfile import (
    read_checked as read_checked,
)
from consentflow.contracts.eventfile import (
    read_events as read_events,
)
from consentflow.contracts.eventfile import (
    write_events as write_events,
)
