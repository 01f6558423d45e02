"""Unit tests of etl/idfiles.py: ids from lists, files, FIFOs and stdin; blanks, comments,
duplicates and a byte order mark; bounded lines and input; an input without ids is an error."""

from __future__ import annotations

import io
import os
import sys
import threading
from pathlib import Path

import pytest

from etl.errors import InputError
from etl.idfiles import MAX_LINE_CHARS, FailedFirst, IdSource, read_ids, require_ids

SID = "c22d24f6-5a47-4597-9a23-c7d01e696b92"
OTHER = "a1b2c3d4-5e6f-7890-abcd-ef1234567890"
HINT = "--allow-empty"


def from_file(path: Path, text: str | bytes, **options: bool) -> IdSource:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return IdSource.from_path(str(path), **options)


def test_read_ids_skips_blanks_comments_and_duplicates() -> None:
    lines = [
        "# header",
        "",
        SID.upper(),
        f"  {SID}  # again",
        "a1b2c3d4-5e6f-7890-abcd-ef1234567890",
    ]
    assert read_ids(lines) == [SID, "a1b2c3d4-5e6f-7890-abcd-ef1234567890"]


def test_read_ids_names_invalid_lines() -> None:
    lines = [SID, "not-a-uuid", "", "1234", *["bad"] * 10]
    with pytest.raises(InputError) as info:
        read_ids(lines)
    message = str(info.value)
    assert "line 2: 'not-a-uuid'" in message and "line 4: '1234'" in message
    assert "12 invalid" in message and "and 7 more" in message and "\n" not in message
    assert read_ids(lines, skip_invalid=True) == [SID]


def test_ids_in_other_rfc_4122_forms_come_back_canonical_and_count_once() -> None:
    lines = ["{" + SID.upper() + "}", "urn:uuid:" + SID, OTHER]
    assert read_ids(lines) == [SID, OTHER]


def test_a_source_can_be_read_more_than_once_and_counts_its_lines(tmp_path: Path) -> None:
    source = from_file(tmp_path / "ids.txt", f"# ids\n{SID}\n\n{OTHER}\n{SID}\n")
    try:
        assert list(source) == list(source) == [SID, OTHER]
        assert (len(source), source.lines, source.invalid) == (2, 5, 0)
        assert (source.name, source.piped) == (str(tmp_path / "ids.txt"), False)
    finally:
        source.close()


def test_a_byte_order_mark_at_the_start_is_ignored(tmp_path: Path) -> None:
    source = from_file(tmp_path / "ids.txt", ("\ufeff" + f"{SID}\r\n{OTHER}\r\n").encode())
    try:
        assert list(source) == [SID, OTHER]
    finally:
        source.close()


def test_a_byte_order_mark_elsewhere_is_an_invalid_id(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="line 2"):
        from_file(tmp_path / "ids.txt", f"{SID}\n\ufeff{OTHER}\n")


def test_a_line_of_the_longest_allowed_length_is_read(tmp_path: Path) -> None:
    line = SID + " #" + "x" * (MAX_LINE_CHARS - len(SID) - 3) + "\n"
    assert len(line) == MAX_LINE_CHARS
    source = from_file(tmp_path / "ids.txt", line + OTHER)
    try:
        assert list(source) == [SID, OTHER]
    finally:
        source.close()


def test_a_longer_line_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    with pytest.raises(InputError) as info:
        from_file(path, f"{SID}\n" + "x" * (MAX_LINE_CHARS * 100) + "\n")
    assert str(info.value) == f"{path}: a line is longer than {MAX_LINE_CHARS} characters"


def test_an_input_over_the_size_bound_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("etl.idfiles.MAX_INPUT_BYTES", 3 * 37 - 1)  # the bound, made small
    with pytest.raises(InputError, match="MiB of input"):
        from_file(tmp_path / "ids.txt", f"{SID}\n{OTHER}\n{SID}\n")


@pytest.mark.parametrize("content", [b"\xff\xfe" + SID.encode(), b"\xc3(\n"])
def test_bytes_that_are_not_utf8_are_one_input_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ids.txt"
    with pytest.raises(InputError, match=f"cannot read {path}"):
        from_file(path, content)


def test_a_missing_file_is_one_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read .*No such file"):
        IdSource.from_path(str(tmp_path / "absent.txt"))


def test_dash_reads_stdin_as_utf8_and_leaves_it_open(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(("\ufeff" + f"{SID}\n# é\n{OTHER}\n").encode()))
    stdin.reconfigure(encoding="latin-1")  # the locale's, which the ids must not depend on
    monkeypatch.setattr(sys, "stdin", stdin)
    source = IdSource.from_path("-")
    try:
        assert list(source) == [SID, OTHER]
        assert (source.name, source.piped) == ("stdin", False)
    finally:
        source.close()
    assert not stdin.closed


def test_a_fifo_is_read_and_known_as_a_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "ids.fifo"
    os.mkfifo(fifo)

    def produce() -> None:
        with open(fifo, "w", encoding="utf-8") as out:
            out.write(f"{SID}\n{OTHER}\n")

    writer = threading.Thread(target=produce, daemon=True)
    writer.start()
    source = IdSource.from_path(str(fifo))
    writer.join(timeout=10)
    try:
        assert list(source) == [SID, OTHER] and source.piped
    finally:
        source.close()


@pytest.mark.parametrize(
    ("text", "skip_invalid", "says"),
    [
        ("", False, "the input was empty: nothing was read from"),
        ("\n# only a comment\n  \n", False, "holds only blank lines and # comments"),
        ("nope\nnot-an-id\n", True, "no id: all 2 id line(s) of"),
    ],
)
def test_an_input_without_ids_is_refused_naming_why(
    tmp_path: Path, text: str, skip_invalid: bool, says: str
) -> None:
    source = from_file(tmp_path / "ids.txt", text, skip_invalid=skip_invalid)
    try:
        with pytest.raises(InputError) as info:
            require_ids(source, HINT)
    finally:
        source.close()
    message = str(info.value)
    assert says in message and message.endswith(f"; {HINT} accepts an input without ids")
    assert "pipe" not in message and "\n" not in message


def test_an_empty_pipe_names_its_producer(tmp_path: Path) -> None:
    fifo = tmp_path / "ids.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: open(fifo, "w").close(), daemon=True)
    writer.start()
    source = IdSource.from_path(str(fifo))
    writer.join(timeout=10)
    try:
        with pytest.raises(InputError, match="a pipe: the command writing it may have failed"):
            require_ids(source, HINT)
    finally:
        source.close()


def test_an_input_with_ids_is_accepted() -> None:
    source = IdSource([SID])
    try:
        require_ids(source, HINT)
    finally:
        source.close()


def test_failed_ids_come_first_and_the_rest_without_them() -> None:
    queue = FailedFirst([OTHER], [SID, OTHER])
    assert list(queue) == [OTHER, SID] and len(queue) == 2
    assert list(queue) == [OTHER, SID]  # again: the rest is iterated anew
