"""The notary of the consent log (issue 22): its keys on disk, its tables in ClickHouse, and the step that appends
what a run writes. The tree and the signed notes themselves are pure, in ``core.merkle`` and ``core.checkpoint``."""
