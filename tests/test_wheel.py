"""The built wheel, installed non-editable into a fresh virtualenv, works from any directory.

The same steps as the Dockerfile: `pip wheel --no-deps` from a copy of the sources, a new
virtualenv, `pip install` of the wheel. To stay fast and offline apart from the build backend
(setuptools, which pip's isolated build fetches from the package index as any user's build
does), the new virtualenv sees the dependencies already installed in the test virtualenv
through a .pth line, and the wheel itself is installed with --no-deps --no-index. That .pth line
adds a directory only: the test virtualenv's editable-install hook is not run, so `etl` can only
come from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import env_for

from etl.fake_api import FakeSignalWire

ROOT = Path(__file__).resolve().parent.parent
# What the Dockerfile copies, and all the wheel is built from.
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "etl", "migrations", "cron", "deploy"]


def clean_env() -> dict[str, str]:
    """The outer environment without anything that would point Python or roomsync elsewhere."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "SIGNALWIRE_", "VIRTUAL_ENV")) and key != "DATABASE_URL"
    }


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{command}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), "."]
    run(command, source, clean_env())
    (built,) = dist.glob("roomsync-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(home)], home.parent, clean_env())
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(home), "platbase": str(home)}))
    (purelib / "outer-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    python = home / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    run(install, home.parent, clean_env())
    return home


def test_wheel_holds_the_package_and_every_migration(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "etl").rglob("*.py"))
    assert [name for name in modules if name not in names] == []  # pyproject lists each package
    migrations = sorted((ROOT / "migrations" / "versions").glob("*.py"))
    assert migrations
    for path in migrations:
        assert f"etl/migrations/versions/{path.name}" in names
    assert {"etl/cli.py", "etl/migrations/env.py", "etl/migrations/script.py.mako"} <= names


def test_installed_wheel_runs_every_command_from_an_empty_directory(
    venv: Path, tmp_path: Path, api: FakeSignalWire
) -> None:
    roomsync = str(venv / "bin" / "roomsync")
    empty = tmp_path / "anywhere"
    empty.mkdir()
    env = clean_env()

    where = run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import etl, etl.storage.migrate as m; print(etl.__file__); print(m.migrations_dir())",
        ],
        empty,
        env,
    ).stdout.split()
    assert all(Path(path).is_relative_to(venv) for path in where), where

    # db upgrade / current / downgrade on the default database: room_sessions.db in the cwd.
    run([roomsync, "db", "upgrade"], empty, env)
    assert (empty / "room_sessions.db").is_file()
    assert run([roomsync, "db", "current"], empty, env).stdout.strip().endswith("(head)")
    run([roomsync, "db", "downgrade", "base", "--yes"], empty, env)
    assert run([roomsync, "db", "current"], empty, env).stdout.strip() == "base"

    demo = json.loads(run([roomsync, "demo", "--sessions", "25", "--json"], empty, env).stdout)
    assert demo["backfill"]["inserted"] == 25 and demo["backfill"]["failed"] == 0
    report = run(
        [roomsync, "report", "--database-url", "sqlite:///roomsync-demo.db", "--format", "json"],
        empty,
        env,
    )
    assert sum(row["sessions"] for row in json.loads(report.stdout)) == 25

    # The commands that call the API, against the stand-in on loopback.
    api_env = env | env_for(api, "sqlite:///synced.db")
    run([roomsync, "db", "upgrade"], empty, api_env)
    ids = list(api.sessions)
    (empty / "ids.txt").write_text("\n".join(ids[1:10]) + "\n")
    fetched = json.loads(run([roomsync, "fetch", ids[0], "--json"], empty, api_env).stdout)
    backfilled = json.loads(run([roomsync, "backfill", "ids.txt", "--json"], empty, api_env).stdout)
    synced = json.loads(run([roomsync, "sync", "--json"], empty, api_env).stdout)
    assert (fetched["inserted"], backfilled["inserted"]) == (1, 9)
    assert synced["listed"] == len(ids) and synced["failed"] == 0


def test_wheel_ships_types_licence_and_deploy_files(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    assert "etl/py.typed" in names  # users' type checkers read roomsync's types
    for path in sorted((ROOT / "cron").iterdir()):
        assert f"etl/deploy_files/cron/{path.name}" in names
    for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        assert f"etl/deploy_files/kubernetes/{path.name}" in names
    (metadata,) = [name for name in names if name.endswith(".dist-info/METADATA")]
    fields = archive.read(metadata).decode().split("\n\n", 1)[0].splitlines()
    assert "License-Expression: MIT" in fields
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_installed_wheel_writes_deploy_files_and_serves_the_demo(
    venv: Path, tmp_path: Path
) -> None:
    """A pipx-like install: the deploy files come out of the package, naming this install's
    roomsync; `demo --serve` runs from it and stops on SIGTERM."""
    from test_demo import check_served_demo, port_is_closed, start_serving

    roomsync = str(venv / "bin" / "roomsync")
    empty = tmp_path / "anywhere"
    empty.mkdir()
    env = clean_env()
    out = empty / "units"
    run([roomsync, "deploy", "systemd", "--output", str(out)], empty, env)
    assert f"ROOMSYNC={roomsync}\n" in (out / "roomsync.env.example").read_text()
    assert f"ExecStart={out / 'roomsync-cron.sh'} -" in (out / "roomsync-sync.service").read_text()
    assert os.access(out / "roomsync-cron.sh", os.X_OK)
    printed = run([roomsync, "deploy", "kubernetes"], empty, env).stdout
    assert printed.count("kind: ") == 3

    served = start_serving([roomsync, "demo", "--serve", "--sessions", "12", "--json"], empty, env)
    try:
        check_served_demo(served, [roomsync], empty, env)
    finally:
        code, stderr = served.stop(signal.SIGTERM)
    assert code == 0, stderr
    assert port_is_closed(served.environment["SIGNALWIRE_SPACE"])
