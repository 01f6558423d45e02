"""Text from outside (room names, the API's error messages) made safe to show.

Room names and error bodies come from a server we do not control. Written raw to a terminal,
ESC and the other control characters can clear the screen, set the window title, or hide a
hyperlink behind innocent text; a CR or newline can forge a log line; bidirectional overrides
can make text read differently from what it is. `visible()` turns each such character into a
visible escape (`\\x1b`, `\\n`, `\\u202e`), so what reaches a terminal or a log is plain
printable text. The data itself stays verbatim in `room_sessions`; this is for output only.
"""

from __future__ import annotations

import re

# Bidirectional controls (Trojan Source, CVE-2021-42574): they reorder what a terminal shows.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Only what needs escaping is matched, so ordinary text costs one regex scan.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029" + "".join(sorted(_BIDI)) + "]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with every control character (C0, DEL, C1), line/paragraph separator and
    bidirectional control shown as an escape; everything else, non-ASCII letters included,
    is kept as it is."""
    return _UNSAFE.sub(_escape, text)


# OWASP "CSV Injection": a cell starting with one of these is taken as a formula by Excel,
# LibreOffice and Google Sheets (=HYPERLINK(...), @SUM(...), +cmd|...). Prefixing a single quote
# makes it text; the quote shows, which is the point.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A text cell for CSV: neutralised as a formula (OWASP) and with control characters made
    visible. Only text goes through here; numbers are written as numbers, a negative one
    included."""
    if cell.startswith(FORMULA_STARTS):
        cell = "'" + cell
    return visible(cell)


# json.dumps always escapes C0 controls inside strings; these it leaves raw with ensure_ascii=False.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029" + "".join(sorted(_BIDI)) + "]")


def json_terminal_safe(text: str) -> str:
    """JSON text with the control characters json.dumps leaves raw under ensure_ascii=False
    (DEL, C1 such as the CSI U+009B, line separators, bidi controls) written as \\u escapes:
    the same JSON value, harmless on a terminal."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
