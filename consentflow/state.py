"""``consentflow.state``, kept for the imports written before the package took its layout (issue 20): the per-subject
state, now in ``consentflow.core.state``. Changelogs written before the move pickle it as ``consentflow.state.SubjectState``:
this name keeps them loading."""

from consentflow.core.state import (
    GENESIS_HASH as GENESIS_HASH,
)
from consentflow.core.state import (
    STATE_FIELDS as STATE_FIELDS,
)
from consentflow.core.state import (
    STATE_FORMAT as STATE_FORMAT,
)
from consentflow.core.state import (
    ConsentFact as ConsentFact,
)
from consentflow.core.state import (
    FactRow as FactRow,
)
from consentflow.core.state import (
    IssuedAction as IssuedAction,
)
from consentflow.core.state import (
    MemoryStore as MemoryStore,
)
from consentflow.core.state import (
    Processing as Processing,
)
from consentflow.core.state import (
    ProcessingRow as ProcessingRow,
)
from consentflow.core.state import (
    SubjectState as SubjectState,
)
from consentflow.core.state import (
    SubjectStore as SubjectStore,
)
