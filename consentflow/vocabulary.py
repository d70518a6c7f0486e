"""``consentflow.vocabulary``, kept for the imports written before the package took its layout (issue 20): the policy's words as enums,
now in ``consentflow.policy.vocabulary``."""

from consentflow.policy.vocabulary import (
    CURRENT_POLICY_VERSION as CURRENT_POLICY_VERSION,
)
from consentflow.policy.vocabulary import (
    POLICY_VERSION_2020_11_14 as POLICY_VERSION_2020_11_14,
)
from consentflow.policy.vocabulary import (
    RULE_SECTIONS as RULE_SECTIONS,
)
from consentflow.policy.vocabulary import (
    AccountKind as AccountKind,
)
from consentflow.policy.vocabulary import (
    ConsentAction as ConsentAction,
)
from consentflow.policy.vocabulary import (
    ConsentChannel as ConsentChannel,
)
from consentflow.policy.vocabulary import (
    ConsentState as ConsentState,
)
from consentflow.policy.vocabulary import (
    CookieAccess as CookieAccess,
)
from consentflow.policy.vocabulary import (
    CookieCategory as CookieCategory,
)
from consentflow.policy.vocabulary import (
    DataCategory as DataCategory,
)
from consentflow.policy.vocabulary import (
    LegalBasis as LegalBasis,
)
from consentflow.policy.vocabulary import (
    MessageChannel as MessageChannel,
)
from consentflow.policy.vocabulary import (
    MessageKind as MessageKind,
)
from consentflow.policy.vocabulary import (
    ProfileAction as ProfileAction,
)
from consentflow.policy.vocabulary import (
    Purpose as Purpose,
)
from consentflow.policy.vocabulary import (
    RecipientKind as RecipientKind,
)
from consentflow.policy.vocabulary import (
    RequestStatus as RequestStatus,
)
from consentflow.policy.vocabulary import (
    RetentionActionKind as RetentionActionKind,
)
from consentflow.policy.vocabulary import (
    Right as Right,
)
from consentflow.policy.vocabulary import (
    Rule as Rule,
)
from consentflow.policy.vocabulary import (
    TransferMechanism as TransferMechanism,
)
