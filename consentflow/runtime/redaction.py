"""Secrets kept in the process: a DSN, a Kafka bootstrap or a registry URL shown without its credentials.

Every answer, message and log line that names where the tables or the broker
are formats the address through ``redacted_dsn``: a ``user:password@`` part
becomes ``***@`` and a password-like query parameter keeps its name but not
its value, so ``--dsn http://admin:s3cret@host:8123`` is shown as
``http://***@host:8123``. The address itself is used unchanged.
"""

from __future__ import annotations

import re

#: What stands in for a removed secret.
HIDDEN = "***"
# user:password@ after a scheme's //, up to the authority's last @ (a password may hold one).
_URL_USERINFO = re.compile(r"(?<=//)[^/?#\s]*@")
# user:password@ at the start of a bootstrap entry without a scheme (host:port,user:pw@host:port).
_ENTRY_USERINFO = re.compile(r"(?:^|(?<=,))(\s*)[^/?#\s,]*@")
_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;](?:password|passwd|pwd|pass|secret|token|access_token|api_key|apikey|key|sasl\.password)=)[^&;#\s]*"
)


def redacted_dsn(address: str) -> str:
    """``address`` (a ClickHouse DSN, a Kafka bootstrap list, a URL) with credentials and secret parameters removed."""
    shown = _URL_USERINFO.sub(f"{HIDDEN}@", address)
    shown = _ENTRY_USERINFO.sub(rf"\g<1>{HIDDEN}@", shown)
    return _SECRET_PARAMETER.sub(rf"\g<1>{HIDDEN}", shown)
