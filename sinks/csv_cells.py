"""CSV cells a spreadsheet shows as text: what leaves the pipeline as CSV never runs as a formula (issue 21).

A recipient's name is free text from the registry; a spreadsheet opening the
record of processing would evaluate a cell such as ``=cmd|' /C calc'!A0`` or
``@SUM(...)``. OWASP's rule for CSV injection: a cell that starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return gets a single quote in front, which
spreadsheets take as "text" and do not show. ``spreadsheet_safe`` is that rule,
once, for every CSV the pipeline writes (``record_of_processing.ropa_csv``).
"""

from __future__ import annotations

#: The first characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """``cell`` with a single quote in front when it starts like a formula; as it is otherwise."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell
