"""The HTML report: self-contained, escaped, and its chart really drawn by a browser.

Chromium (Debian's `chromium` package; tests/run.sh installs it when run as root) renders the page
headless: the DOM must hold one bar per period with heights proportional to the minutes, and the
screenshot must show them. Without chromium these tests skip loudly, except under CI, where
that is a failure.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import uuid
import zlib
from collections import defaultdict
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from etl.cli import main
from etl.fake_api import generate_sessions
from etl.records import parse_session
from etl.report_html import BAR_COLOUR, PLOT_HEIGHT, render_html
from etl.storage.engines import make_engine
from etl.storage.migrate import upgrade
from etl.storage.reporting import ReportRow
from etl.storage.sessions import upsert_sessions

XSS = "<script>alert(1)</script>"
CHROMIUM_TIMEOUT_S = 60
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


# --------------------------------------------------------------------------- data and pages


def _payloads() -> list[dict[str, Any]]:
    base = generate_sessions(50, seed=21)
    template = base[0]
    extra = [
        # a room whose name is markup
        {**template, "id": str(uuid.uuid4()), "room_id": str(uuid.uuid4()), "display_name": XSS},
        # a day with only a session still running: a bar of zero minutes
        {
            **template,
            "id": str(uuid.uuid4()),
            "start_time": "2026-11-03T10:00:00Z",
            "end_time": None,
            "duration": None,
            "status": "in-progress",
            "cost_in_dollars": None,
        },
    ]
    return base + extra


@pytest.fixture(scope="module")
def payloads() -> list[dict[str, Any]]:
    return _payloads()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, payloads: list[dict[str, Any]]) -> str:
    """One SQLite database for the module: rendering does not depend on the backend."""
    url = f"sqlite:///{tmp_path_factory.mktemp('html') / 'report.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        rows = [parse_session(p, p["id"]) for p in payloads]
        upsert_sessions(engine, rows, datetime(2026, 11, 25, tzinfo=UTC))
    finally:
        engine.dispose()
    return url


def write_page(database: str, path: Path, *args: str) -> Path:
    result = CliRunner().invoke(
        main, ["report", "--format", "html", "-o", str(path), *args], env={"DATABASE_URL": database}
    )
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def day_page(database: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_page(database, tmp_path_factory.mktemp("pages") / "by-day.html")


@pytest.fixture(scope="module")
def room_page(database: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_page(database, tmp_path_factory.mktemp("pages") / "by-room.html", "--by", "room")


def expected_minutes(payloads: list[dict[str, Any]]) -> dict[str, float]:
    """Known minutes per UTC day of start (or creation), computed from the payloads."""
    minutes: dict[str, float] = defaultdict(float)
    for p in payloads:
        at = datetime.fromisoformat(p["start_time"] or p["created_at"]).astimezone(UTC)
        minutes[at.date().isoformat()] += (p["duration"] or 0) / 60
    return dict(sorted(minutes.items()))


# --------------------------------------------------------------------------- chromium


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        reason = "chromium not found: apt-get install chromium (tests/run.sh does it as root)"
        if os.environ.get("CI"):
            pytest.fail(f"chromium is required in CI: {reason}")
        pytest.skip(f"HTML CHART TEST SKIPPED: {reason}")
    return found


def run_chromium(chromium: str, tmp_path: Path, page: Path, *args: str) -> str:
    profile = tmp_path / f"profile-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Dom(HTMLParser):
    """What a test needs from a rendered page: bars, script elements, table rows, text."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.bars: list[dict[str, str]] = []
        self.scripts = 0
        self.table_rows = 0
        self.text: list[str] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "rect" and values.get("class") == "bar":
            self.bars.append(values)
        elif tag == "script":
            self.scripts += 1
        elif tag == "tr":
            self.table_rows += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def png_rows(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """(width, height, channels, pixel rows) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat.append(chunk)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(
            raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, channels
        )
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


def _unfilter(kind: int, line: bytearray, up: bytearray, bpp: int) -> bytearray:
    """Undo one PNG scanline filter (RFC 2083, section 6)."""
    if kind == 0:
        return line
    if kind == 2:
        return bytearray((a + b) & 255 for a, b in zip(line, up, strict=True))
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        corner = up[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 255
        elif kind == 3:
            line[i] = (line[i] + ((left + up[i]) >> 1)) & 255
        elif kind == 4:
            p = left + up[i] - corner
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - corner)
            best = left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner
            line[i] = (line[i] + best) & 255
    return line


# --------------------------------------------------------------------------- without a browser


def test_page_is_self_contained(day_page: Path) -> None:
    page = day_page.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for outside in ("<script", "src=", "href=", "url(", "@import", "http:", "https:", "<link"):
        assert outside not in page, outside
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<svg" in page and "<table>" in page


def test_every_database_value_is_escaped(room_page: Path) -> None:
    page = room_page.read_text(encoding="utf-8")
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    row = ReportRow('"><img src=x onerror=alert(2)>', 1, 1, 0, 60, 1, 0.5, name="<b>&")
    html = render_html([row], "room")
    assert "<img" not in html and "&quot;&gt;&lt;img" in html and "&lt;b&gt;&amp;" in html


def test_empty_report_has_no_chart() -> None:
    html = render_html([], "day", since=datetime(2030, 1, 1, tzinfo=UTC))
    assert "No sessions in this range." in html and "<svg" not in html
    assert "Sessions from 2030-01-01" in html


# --------------------------------------------------------------------------- in chromium


def test_chromium_draws_one_bar_per_day(
    chromium: str, day_page: Path, payloads: list[dict[str, Any]], tmp_path: Path
) -> None:
    dom = Dom(run_chromium(chromium, tmp_path, day_page, "--dump-dom"))
    expected = expected_minutes(payloads)
    assert [bar["data-group"] for bar in dom.bars] == list(expected)
    assert dom.table_rows == 1 + len(expected) + 1  # header, one per day, total
    heights = [float(bar["height"]) for bar in dom.bars]
    minutes = [float(bar["data-minutes"]) for bar in dom.bars]
    assert minutes == pytest.approx(list(expected.values()), abs=0.005)
    scale = max(heights) / max(minutes)
    assert heights == pytest.approx([m * scale for m in minutes], abs=0.02)
    assert PLOT_HEIGHT / 2 <= max(heights) <= PLOT_HEIGHT
    assert heights[list(expected).index("2026-11-03")] == 0  # running sessions: no minutes yet
    days = [date.fromisoformat(day).toordinal() for day in expected]
    xs = [float(bar["x"]) for bar in dom.bars]
    per_day = (xs[-1] - xs[0]) / (days[-1] - days[0])
    assert xs == pytest.approx([xs[0] + (d - days[0]) * per_day for d in days], abs=0.02)
    assert days[-1] - days[0] + 1 > len(days)  # some days have no sessions: gaps stay gaps


def test_chromium_renders_markup_in_names_as_text(
    chromium: str, room_page: Path, tmp_path: Path
) -> None:
    dom = Dom(run_chromium(chromium, tmp_path, room_page, "--dump-dom"))
    assert dom.scripts == 0
    assert any(XSS in text for text in dom.text)
    assert any(XSS in bar["data-group"] for bar in dom.bars)


def test_chromium_screenshot_shows_the_bars(chromium: str, day_page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    run_chromium(chromium, tmp_path, day_page, f"--screenshot={shot}", "--window-size=1000,800")
    assert shot.is_file() and shot.stat().st_size > 0
    width, height, channels, rows = png_rows(shot.read_bytes())
    assert (width, height) == (1000, 800)
    bar = bytes.fromhex(BAR_COLOUR.removeprefix("#"))
    pixels = [row[x : x + 3] for row in rows for x in range(0, len(row), channels)]
    assert len(set(pixels)) > 10, "the screenshot is blank"
    assert pixels[0] == b"\xff\xff\xff"  # the page's white background
    area = sum(float(b["width"]) * float(b["height"]) for b in Dom(day_page.read_text()).bars)
    painted = pixels.count(bar)
    assert 0.7 * area <= painted <= 1.05 * area, (painted, area)


# --------------------------------------------------------------------------- the bill on the page


BILL_SYNC_END = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def account() -> Any:
    from etl.fake_api import generate_account

    return generate_account(40, seed=31)


@pytest.fixture(scope="module")
def bill_page(tmp_path_factory: pytest.TempPathFactory, account: Any) -> Path:
    """A page over a whole stand-in account (members, recordings, charges), with a successful
    sync in the ledger and a monthly budget in the environment."""
    from bill_data import store_account

    from etl.outcomes import RunOutcome
    from etl.storage.schema import sync_runs

    url = f"sqlite:///{tmp_path_factory.mktemp('bill') / 'bill.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        store_account(engine, account)
        with engine.begin() as conn:
            conn.execute(
                sync_runs.insert().values(
                    command="sync",
                    started_at=BILL_SYNC_END,
                    finished_at=BILL_SYNC_END,
                    outcome=str(RunOutcome.OK),
                )
            )
    finally:
        engine.dispose()
    path = tmp_path_factory.mktemp("pages") / "bill.html"
    result = CliRunner().invoke(
        main,
        ["report", "--format", "html", "-o", str(path)],
        env={"DATABASE_URL": url, "ROOMSYNC_MONTHLY_BUDGET": "1000"},
    )
    assert result.exit_code == 0, result.output
    return path


def expected_daily_bill(account: Any) -> dict[str, dict[str, float]]:
    """Per UTC day: final session costs, recordings' cost, participant-minutes."""
    out: dict[str, dict[str, float]] = defaultdict(
        lambda: {"sessions": 0.0, "recordings": 0.0, "participant": 0.0}
    )
    for p in account.sessions:
        day = datetime.fromisoformat(p["start_time"] or p["created_at"]).astimezone(UTC)
        figures = out[day.date().isoformat()]
        if p["status"] == "completed" and p["cost_in_dollars"] is not None:
            figures["sessions"] += p["cost_in_dollars"]
        recordings = account.recordings.get(p["id"], [])
        figures["recordings"] += sum(r["cost_in_dollars"] or 0 for r in recordings)
        members = account.members.get(p["id"], [])
        figures["participant"] += sum(m["duration"] or 0 for m in members) / 60
    return dict(sorted(out.items()))


class BillDom(HTMLParser):
    """The rects of the daily charts and the headline figures of a rendered page."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.rects: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.figures: dict[str, str] = {}
        self.asof: str | None = None
        self._figure: str | None = None
        self._value = False
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "rect":
            self.rects[values.get("class", "")].append(values)
        elif tag == "div" and values.get("class") == "figure":
            self._figure = values["data-name"]
        elif tag == "span" and values.get("class") == "value" and self._figure:
            self._value = True
        elif tag == "time":
            self.asof = values.get("datetime")

    def handle_data(self, data: str) -> None:
        if self._value and self._figure:
            self.figures[self._figure] = data
            self._value, self._figure = False, None


def test_bill_page_is_still_self_contained(bill_page: Path) -> None:
    page = bill_page.read_text(encoding="utf-8")
    for outside in ("<script", "src=", "href=", "url(", "@import", "http:", "https:", "<link"):
        assert outside not in page, outside
    assert page.count("<svg") == 3


def test_chromium_shows_headline_and_daily_bill_charts(
    chromium: str, bill_page: Path, account: Any, tmp_path: Path
) -> None:
    dom = BillDom(run_chromium(chromium, tmp_path, bill_page, "--dump-dom"))
    expected = expected_daily_bill(account)
    sessions = dom.rects["cost-session"]
    recordings = dom.rects["cost-recording"]
    participant = dom.rects["participant-bar"]
    for rects in (sessions, recordings, participant):
        assert [r["data-group"] for r in rects] == list(expected)
    want_sessions = [e["sessions"] for e in expected.values()]
    want_recordings = [e["recordings"] for e in expected.values()]
    assert [float(r["data-value"]) for r in sessions] == pytest.approx(want_sessions, abs=1e-5)
    assert [float(r["data-value"]) for r in recordings] == pytest.approx(want_recordings, abs=1e-5)
    # stacked: a day's recordings sit on its sessions, heights on one scale for both
    for low, high in zip(sessions, recordings, strict=True):
        assert float(high["y"]) + float(high["height"]) == pytest.approx(float(low["y"]), abs=0.02)
    heights = [float(r["height"]) for r in (*sessions, *recordings)]
    dollars = [*want_sessions, *want_recordings]
    scale = max(heights) / max(dollars)
    assert heights == pytest.approx([d * scale for d in dollars], abs=0.05)
    want_pm = [e["participant"] for e in expected.values()]
    pm_heights = [float(r["height"]) for r in participant]
    pm_scale = max(pm_heights) / max(want_pm)
    assert pm_heights == pytest.approx([m * pm_scale for m in want_pm], abs=0.05)
    assert PLOT_HEIGHT / 2 <= max(pm_heights) <= PLOT_HEIGHT

    total_pm = sum(want_pm)
    live = sum(p["status"] == "in-progress" for p in account.sessions)
    assert dom.figures["sessions"] == f"{len(account.sessions):,}"
    assert dom.figures["participant-minutes"] == f"{total_pm:,.1f}"
    assert dom.figures["session cost"] == f"${sum(want_sessions):,.2f}"
    assert dom.figures["recordings' cost"] == f"${sum(want_recordings):,.2f}"
    assert dom.figures["sessions live now"] == str(live) and live > 0
    assert dom.figures["budget used this month"].endswith(f"of $1,000.00 in {_this_month()}")
    assert dom.asof == "2026-11-01T06:30:00Z"


def _this_month() -> str:
    return f"{datetime.now(UTC):%Y-%m}"


def test_chromium_screenshot_paints_the_bill_charts(
    chromium: str, bill_page: Path, tmp_path: Path
) -> None:
    from etl.report_html import PARTICIPANT_COLOUR, RECORDING_COST_COLOUR, SESSION_COST_COLOUR

    shot = tmp_path / "bill.png"
    run_chromium(chromium, tmp_path, bill_page, f"--screenshot={shot}", "--window-size=1000,1600")
    width, height, channels, rows = png_rows(shot.read_bytes())
    assert (width, height) == (1000, 1600)
    pixels = [row[x : x + 3] for row in rows for x in range(0, len(row), channels)]
    dom = BillDom(bill_page.read_text(encoding="utf-8"))
    for css, colour in (
        ("cost-session", SESSION_COST_COLOUR),
        ("cost-recording", RECORDING_COST_COLOUR),
        ("participant-bar", PARTICIPANT_COLOUR),
    ):
        area = sum(float(r["width"]) * float(r["height"]) for r in dom.rects[css])
        painted = pixels.count(bytes.fromhex(colour.removeprefix("#")))
        assert area > 0 and 0.6 * area <= painted <= 1.05 * area + 200, (css, painted, area)
