"""Issue 13, the network side: credentials never reach a proxy in clear, never sit in the space
URL, and follow `links.next` only to the same host. (The unit tests behind it moved to their
modules' files: settings refusing a space with userinfo in tests/test_config.py, the client's
same-origin rule for `links.next` in tests/test_signalwire.py.)"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from conftest import TOKEN

from etl.cli import main
from etl.config import resolve_base_url
from etl.errors import ConfigError
from etl.fake_api import FakeSignalWire

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


class RecordingProxy(socketserver.ThreadingTCPServer):
    """A "proxy" on a loopback port that records what each connection sends and answers 502."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.received: list[bytes] = []

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _ProxyHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: RecordingProxy = self.server  # type: ignore[assignment]
        self.request.settimeout(5)
        try:
            data = self.request.recv(65536)
        except OSError:
            data = b""
        server.received.append(data)
        self.request.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    server = RecordingProxy()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_recording_proxy_sees_plain_http_credentials(proxy: RecordingProxy) -> None:
    """The trap works: a client that does use the proxy hands it the Basic credentials."""
    with httpx.Client(proxy=proxy.url, timeout=5) as client:
        response = client.get("http://roomsync-space.invalid/x", auth=("project", TOKEN))
    assert response.status_code == 502
    assert len(proxy.received) == 1 and b"Authorization: Basic" in proxy.received[0]


@pytest.mark.parametrize("backend", ["sqlite"])  # about the client, not storage
def test_a_loopback_space_never_goes_through_an_environment_proxy(
    proxy: RecordingProxy, api: FakeSignalWire, cli_env: dict[str, str], sessions: list[dict]
) -> None:
    env: dict[str, Any] = {**cli_env, "NO_PROXY": None, "no_proxy": None}
    env.update(dict.fromkeys(PROXY_VARIABLES, proxy.url))
    result = CliRunner().invoke(
        main, ["fetch", sessions[0]["id"], "--json"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inserted"] == 1
    assert proxy.received == []  # not one connection: the credentials stayed on this machine
    assert api.total_requests == 1


@pytest.mark.parametrize(
    "space",
    [
        "http://project:s3cr3t-in-space@127.0.0.1:8080",
        "https://project:s3cr3t-in-space@example.signalwire.com",
        "project:s3cr3t-in-space@example.signalwire.com",
        "https://s3cr3t-in-space@example.signalwire.com/",
    ],
)
def test_credentials_in_the_space_are_refused_without_echo(space: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_base_url(space)
    assert "s3cr3t-in-space" not in str(info.value)
    assert "SIGNALWIRE_PROJECT_ID" in str(info.value)


@pytest.mark.parametrize("backend", ["sqlite"])  # refused before the database is used
def test_credentials_in_the_space_are_not_printed_by_verbose_runs(
    cli_env: dict[str, str], sessions: list[dict], api: FakeSignalWire
) -> None:
    space = api.base_url.replace("http://", "http://project:s3cr3t-in-space@")
    for args in (["fetch", sessions[0]["id"], "-v"], ["sync", "-v"]):
        result = CliRunner().invoke(
            main, args, env={**cli_env, "SIGNALWIRE_SPACE": space}, catch_exceptions=False
        )
        assert result.exit_code == 3
        assert "s3cr3t-in-space" not in result.output
        assert len(result.stderr.splitlines()) == 1
    assert api.total_requests == 0
