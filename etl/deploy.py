"""`roomsync deploy`: the deployment files that ship inside the package, printed or written.

The checkout's top-level cron/ and deploy/kubernetes/ are the only copies of these files; the
wheel ships them as `etl.deploy_files.cron` and `etl.deploy_files.kubernetes` (package-dir in
pyproject.toml), the same way migrations/ ships as `etl.migrations`. So a pipx or container
install has them without a checkout.

The files name two paths that depend on the install: where the cron wrapper lives
(/opt/roomsync/cron in the files as written) and the roomsync executable (the env file's
ROOMSYNC=). Written with an output directory, the wrapper's path becomes that directory; the
executable is always this roomsync's own, so that cron and systemd run the install that printed
them.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CRON_DIR = "/opt/roomsync/cron"
_DEFAULT_EXECUTABLE = "ROOMSYNC=/opt/roomsync/.venv/bin/roomsync"
WRAPPER = "roomsync-cron.sh"

# Which files each kind of deployment needs, from which shipped directory.
KINDS: dict[str, tuple[tuple[str, str], ...]] = {
    "cron": (
        ("cron", "roomsync.crontab"),
        ("cron", WRAPPER),
        ("cron", "roomsync.env.example"),
    ),
    "systemd": (
        ("cron", "roomsync-sync.service"),
        ("cron", "roomsync-sync.timer"),
        ("cron", WRAPPER),
        ("cron", "roomsync.env.example"),
    ),
    "kubernetes": (
        ("kubernetes", "db-upgrade-job.yaml"),
        ("kubernetes", "sync-cronjob.yaml"),
        ("kubernetes", "backfill-indexed-job.yaml"),
    ),
}
# Where each shipped directory is in a checkout that is imported without being installed.
_SOURCE_DIRS = {"cron": ROOT / "cron", "kubernetes": ROOT / "deploy" / "kubernetes"}


@dataclass(frozen=True)
class DeployFile:
    name: str
    text: str

    @property
    def executable(self) -> bool:
        return self.name.endswith(".sh")


def shipped_dir(which: str) -> Any:
    """The shipped directory `which` (cron, kubernetes): the installed package's, else the
    checkout's."""
    from importlib import resources

    try:
        return resources.files(f"{__package__}.deploy_files.{which}")
    except ModuleNotFoundError:
        return _SOURCE_DIRS[which]


def roomsync_executable() -> str:
    """This install's roomsync: beside the running Python (a virtualenv, pipx, the image),
    else on PATH, else the bare name (the wrapper then looks on PATH itself)."""
    beside = Path(sys.executable).parent / "roomsync"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("roomsync") or "roomsync"


def deploy_files(kind: str, cron_dir: str = DEFAULT_CRON_DIR) -> list[DeployFile]:
    """The files of `kind`, with the wrapper's directory and the executable filled in."""
    files = []
    for which, name in KINDS[kind]:
        text = (shipped_dir(which) / name).read_text(encoding="utf-8")
        text = text.replace(DEFAULT_CRON_DIR, cron_dir)
        text = text.replace(_DEFAULT_EXECUTABLE, f"ROOMSYNC={roomsync_executable()}")
        files.append(DeployFile(name, text))
    return files


def render(files: list[DeployFile]) -> str:
    """All files as one text for stdout, each after a `# ==> NAME <==` line (a comment in every
    one of these formats, so `roomsync deploy kubernetes | kubectl apply -f -` works)."""
    parts = []
    for index, file in enumerate(files):
        separator = "---\n" if file.name.endswith(".yaml") and index else ""
        parts.append(f"{separator}# ==> {file.name} <==\n{file.text}")
    return "".join(parts)


def write(files: list[DeployFile], directory: Path, overwrite: bool) -> list[Path]:
    """Write the files into `directory` (made if missing); refuses to replace a file unless
    `overwrite`. The wrapper is made executable; the rest is left to the umask."""
    targets = [directory / file.name for file in files]
    existing = [str(path) for path in targets if path.exists()]
    if existing and not overwrite:
        raise InputError(f"already there (add --force to replace): {', '.join(existing)}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for file, path in zip(files, targets, strict=True):
            path.write_text(file.text, encoding="utf-8")
            if file.executable:
                path.chmod(0o755)
    except OSError as exc:
        raise InputError(f"cannot write into {directory}: {exc.strerror or exc}") from None
    return targets
