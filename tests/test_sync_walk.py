"""Issue 22, defect 1: a list walk cannot end early without saying so.

A `links.next` that loops (back to the first page, a page pointing at itself, two tokens
alternating) or is not a string used to read as the end of the list: the sync exited 0 and moved
the watermark, and the sessions behind the loop were never stored. Now it ends the walk as an
error: exit 1, the ledger row says why, the watermark and `full_pass` do not move, what was
listed is stored, and the next run walks the whole list again.

Real `python -m etl` processes, the hostile stand-in on loopback, real migrations, both backends.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import PROJECT, TOKEN
from hostile_api import LIST, LIST_PATH, HostileAPI, ScriptedPages
from roomsync_proc import env_for_url, roomsync, runs, stored
from sqlalchemy.engine import Engine

from etl.config import Settings
from etl.errors import WalkError
from etl.fake_api import generate_sessions
from etl.signalwire import SignalWireClient

PAGE = 2
FIRST = f"{LIST_PATH}?page_size={PAGE}"  # the first page's own URL, as the client asks for it
FAST = ["--retries", "2", "--backoff", "0.01", "--json", "--page-size", str(PAGE)]


def token(name: str) -> str:
    return f"{LIST_PATH}?page_size={PAGE}&page_token={name}"


def loop_pages(shape: str, sessions: list[dict[str, Any]]) -> dict[str, tuple[list[Any], Any]]:
    """Pages of two sessions each, keyed by page token, whose `next` has the given shape. The
    sessions after the loop (at least the last two) are on no page the walk reaches."""
    one, two, three = sessions[0:2], sessions[2:4], sessions[4:6]
    if shape == "back to the first page":  # A -> B -> A
        return {"": (one, token("PB")), "PB": (two, FIRST)}
    if shape == "a page pointing at itself":
        return {"": (one, FIRST)}
    if shape == "two tokens alternating":  # first -> PB -> PC -> PB -> PC ...
        return {"": (one, token("PB")), "PB": (two, token("PC")), "PC": (three, token("PB"))}
    if shape == "a next that is not a string":
        return {"": (one, token("PB")), "PB": (two, 3)}
    raise AssertionError(shape)


SHAPES = [
    "back to the first page",
    "a page pointing at itself",
    "two tokens alternating",
    "a next that is not a string",
]
LISTED = {  # sessions the looping walk reaches before the loop shows
    "back to the first page": 4,
    "a page pointing at itself": 2,
    "two tokens alternating": 6,
    "a next that is not a string": 4,
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("shape", SHAPES)
def test_a_looping_or_malformed_next_fails_the_sync_and_the_next_run_walks_again(
    hostile_api: HostileAPI, migrated_url: str, engine: Engine, shape: str
) -> None:
    sessions = generate_sessions(10, seed=220)
    hostile_api.set_sessions(sessions)
    hostile_api.always(LIST, ScriptedPages(loop_pages(shape, sessions)))
    env = env_for_url(hostile_api.base_url, migrated_url)

    looped = roomsync(["sync", *FAST], env, timeout=30)
    assert looped.returncode == 1, f"a looping list read as its end: {looped.stderr[-2000:]}"
    assert "Traceback" not in looped.stderr
    assert "links.next" in looped.stderr
    row = runs(engine)[-1]
    assert row["outcome"] == "failed" and "links.next" in (row["error"] or ""), row
    assert row["watermark"] is None and not row["full_pass"], row
    listed = {s["id"] for s in sessions[: LISTED[shape]]}
    assert set(stored(engine)) == listed  # what was listed is kept
    assert len(hostile_api.requests_to(LIST)) == LISTED[shape] // PAGE  # no page read twice

    hostile_api.always(LIST, None)  # the list is sane again: the next run walks all of it
    again = roomsync(["sync", *FAST], env, timeout=30)
    assert again.returncode == 0, again.stderr[-2000:]
    assert set(stored(engine)) == {s["id"] for s in sessions}
    row = runs(engine)[-1]
    assert row["outcome"] == "ok" and row["full_pass"] and row["watermark"] is not None, row


# --------------------------------------------------------------------------- the client alone


def walk(api: HostileAPI, page_size: int = PAGE) -> tuple[list[list[Any]], BaseException | None]:
    """Every page the client yields for one walk, and the error that ended it (or None)."""
    settings = Settings(
        base_url=api.base_url,
        project_id=PROJECT,
        api_token=TOKEN,
        database_url="sqlite://",
        timeout=5.0,
        backoff=0.01,
        retries=1,
    )
    pages: list[list[Any]] = []

    async def go() -> BaseException | None:
        async with SignalWireClient(settings) as client:
            try:
                async for page in client.list_room_sessions(page_size=page_size):
                    pages.append(page)
            except WalkError as exc:
                return exc
        return None

    return pages, asyncio.run(go())


@pytest.mark.timeout(30)
@pytest.mark.parametrize("next_link", [3, 0, 1.5, True, {"href": "x"}, ["x"], [], {}])
def test_a_next_of_another_type_is_an_error_after_its_page(
    hostile_api: HostileAPI, next_link: Any
) -> None:
    sessions = generate_sessions(4, seed=221)
    hostile_api.always(LIST, ScriptedPages({"": (sessions[:2], next_link)}))
    pages, error = walk(hostile_api)
    assert [[item["id"] for item in page] for page in pages] == [[s["id"] for s in sessions[:2]]]
    assert isinstance(error, WalkError) and "links.next" in str(error)
    assert "not a string" in str(error)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_a_next_already_followed_is_an_error_naming_the_page(
    hostile_api: HostileAPI, shape: str
) -> None:
    sessions = generate_sessions(6, seed=222)
    hostile_api.always(LIST, ScriptedPages(loop_pages(shape, sessions)))
    pages, error = walk(hostile_api)
    assert isinstance(error, WalkError) and "already read" in str(error)
    assert len(pages) == LISTED[shape] // PAGE  # every page read once, each one yielded


@pytest.mark.timeout(30)
def test_a_next_with_its_parameters_reordered_is_the_same_page(hostile_api: HostileAPI) -> None:
    sessions = generate_sessions(4, seed=223)
    reordered = f"{LIST_PATH}?page_token=PB&page_size={PAGE}"
    pages = {"": (sessions[:2], token("PB")), "PB": (sessions[2:4], reordered)}
    hostile_api.always(LIST, ScriptedPages(pages))
    _, error = walk(hostile_api)
    assert isinstance(error, WalkError)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("end", [None, "", "absent links", "null links"])
def test_an_absent_null_or_empty_next_is_still_the_end(hostile_api: HostileAPI, end: Any) -> None:
    sessions = generate_sessions(4, seed=224)
    last: Any = (sessions[2:4], end)
    if end == "absent links":
        last = {"data": sessions[2:4]}
    elif end == "null links":
        last = {"data": sessions[2:4], "links": None}
    hostile_api.always(LIST, ScriptedPages({"": (sessions[:2], token("PB")), "PB": last}))
    pages, error = walk(hostile_api)
    assert error is None
    assert [item["id"] for page in pages for item in page] == [s["id"] for s in sessions]
