"""Unit tests of etl/safe_text.py: text from outside shown with every dangerous character as a
visible escape, spreadsheet cells that cannot start a formula, JSON harmless on a terminal."""

from __future__ import annotations

import json

import pytest

from etl.safe_text import json_terminal_safe, spreadsheet_safe, visible


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # window title
        ("\x1b[2J", "\\x1b[2J"),  # clear screen
        ("a\nb\rc\td", "a\\x0ab\\x0dc\\x09d"),  # forged log lines
        ("\x00\x7f", "\\x00\\x7f"),  # NUL, DEL
        ("\x9b31m", "\\x9b31m"),  # C1 CSI
        ("x\u2028y\u2029z", "x\\u2028y\\u2029z"),  # line/paragraph separators
        ("admin\u202egnp.exe", "admin\\u202egnp.exe"),  # right-to-left override
        ("\u2066\u2069\u200e\u061c", "\\u2066\\u2069\\u200e\\u061c"),  # isolates, marks
    ],
)
def test_control_and_bidi_characters_become_visible_escapes(raw: str, shown: str) -> None:
    assert visible(raw) == shown
    assert visible(raw).isprintable()


def test_ordinary_text_is_kept_as_it_is() -> None:
    text = "Café 🚀 Zoë's room — 会议室 ×2 \\n (already escaped)"
    assert visible(text) == text


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\\x09=1"),
        ("\r=1", "'\\x0d=1"),
        ("room = 1", "room = 1"),
        ("", ""),
    ],
)
def test_spreadsheet_cells_never_start_a_formula(cell: str, safe: str) -> None:
    assert spreadsheet_safe(cell) == safe


@pytest.mark.parametrize("text", ["\x7f", "\x9b", "\u2028", "\u202e", "a\u2066b\u2069c"])
def test_json_for_a_terminal_escapes_what_json_dumps_leaves_raw(text: str) -> None:
    dumped = json.dumps({"name": text}, ensure_ascii=False)
    safe = json_terminal_safe(dumped)
    assert safe.isprintable()
    assert json.loads(safe) == {"name": text}  # the same JSON value


def test_json_for_a_terminal_keeps_ordinary_text() -> None:
    dumped = json.dumps({"name": "Café 🚀"}, ensure_ascii=False)
    assert json_terminal_safe(dumped) == dumped
