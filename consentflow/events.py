"""``consentflow.events``, kept for the imports written before the package took its layout (issue 20): the typed constructors of the input events,
now in ``consentflow.contracts.events``."""

from consentflow.contracts.events import (
    ID_RULE as ID_RULE,
)
from consentflow.contracts.events import (
    Event as Event,
)
from consentflow.contracts.events import (
    MechanismPeriod as MechanismPeriod,
)
from consentflow.contracts.events import (
    Record as Record,
)
from consentflow.contracts.events import (
    consent_event as consent_event,
)
from consentflow.contracts.events import (
    consent_granted as consent_granted,
)
from consentflow.contracts.events import (
    consent_refused as consent_refused,
)
from consentflow.contracts.events import (
    consent_withdrawn as consent_withdrawn,
)
from consentflow.contracts.events import (
    cookie_accessed as cookie_accessed,
)
from consentflow.contracts.events import (
    data_disclosed as data_disclosed,
)
from consentflow.contracts.events import (
    is_pseudonymous_id as is_pseudonymous_id,
)
from consentflow.contracts.events import (
    message_sent as message_sent,
)
from consentflow.contracts.events import (
    new_event_id as new_event_id,
)
from consentflow.contracts.events import (
    newsletter_sent as newsletter_sent,
)
from consentflow.contracts.events import (
    profile_event as profile_event,
)
from consentflow.contracts.events import (
    recipient_registered as recipient_registered,
)
from consentflow.contracts.events import (
    rights_event as rights_event,
)
