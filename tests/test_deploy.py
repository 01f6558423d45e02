"""The deploy files: the Dockerfile lints clean, the Kubernetes manifests validate and run
commands roomsync accepts. (Images cannot be built or pulled here; tests/test_wheel.py runs the
Dockerfile's install steps in a fresh virtualenv instead.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml  # type: ignore[import-untyped]
from test_wheel import SOURCES

from etl.cli import main
from etl.shard import parse_shard

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "Dockerfile"
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
SECRET_NAMES = ("SIGNALWIRE_API_TOKEN", "SIGNALWIRE_PROJECT_ID", "DATABASE_URL", "PASSWORD")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def test_dockerfile_is_clean_under_hadolint() -> None:
    done = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_builds_a_wheel_and_runs_roomsync_as_non_root() -> None:
    steps = dockerfile_instructions()
    bases = [args for name, args in steps if name == "FROM"]
    assert len(bases) >= 2 and all("-slim" in base.split()[0] for base in bases)
    runs = " ".join(args for name, args in steps if name == "RUN")
    assert "pip wheel" in runs and "--no-cache-dir" in runs
    user = [args for name, args in steps if name == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert json.loads([args for name, args in steps if name == "ENTRYPOINT"][-1]) == ["roomsync"]
    # The image is built from exactly what the wheel test builds from, and nothing secret.
    copied = {
        source.rstrip("/")
        for name, args in steps
        if name == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }
    assert copied == set(SOURCES)
    for name, args in steps:
        if name in ("ENV", "ARG"):
            assert not any(secret in args.upper() for secret in SECRET_NAMES), args
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") + 1 :][: len(SOURCES)] == [
        f"!{name}/" if (ROOT / name).is_dir() else f"!{name}" for name in SOURCES
    ]


def test_kubernetes_manifests_validate_strictly() -> None:
    assert MANIFESTS
    done = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "--quiet", *map(str, MANIFESTS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def resources() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            found[document["metadata"]["name"]] = document
    return found


def job_spec(resource: dict[str, Any]) -> dict[str, Any]:
    if resource["kind"] == "CronJob":
        return dict(resource["spec"]["jobTemplate"]["spec"])
    return dict(resource["spec"])


def containers(resource: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    pod = job_spec(resource)["template"]["spec"]
    for container in pod["containers"]:
        yield pod, container


def parse_command(args: list[str]) -> click.Context:
    """Parse `roomsync ARGS` as the CLI would, without running it: unknown options fail."""
    ctx = main.make_context("roomsync", list(args))
    command: click.Command = main
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        assert sub is not None, name
        ctx = sub.make_context(name or "", rest, parent=ctx)
        command = sub
    return ctx


def test_every_pod_is_non_root_read_only_bounded_and_gets_secrets_from_a_secret() -> None:
    for name, resource in resources().items():
        assert job_spec(resource)["activeDeadlineSeconds"] > 0, name
        for pod, container in containers(resource):
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["automountServiceAccountToken"] is False
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
            for variable in container.get("env", []):
                assert "value" not in variable, (name, variable)  # only valueFrom a Secret
                assert "secretKeyRef" in variable["valueFrom"]
            assert all("secretRef" in source for source in container.get("envFrom", []))
            assert container.get("env") or container.get("envFrom"), name
            parse_command(container["args"])


def test_sync_cronjob_never_overlaps_and_has_deadlines() -> None:
    cronjob = resources()["roomsync-sync"]
    assert cronjob["kind"] == "CronJob"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["startingDeadlineSeconds"] > 0
    ((_, container),) = containers(cronjob)
    assert parse_command(container["args"]).command.name == "sync"


def test_db_upgrade_job() -> None:
    ((_, container),) = containers(resources()["roomsync-db-upgrade"])
    ctx = parse_command(container["args"])
    assert ctx.command.name == "upgrade" and ctx.parent is not None
    assert ctx.parent.command.name == "db"


def test_backfill_is_an_indexed_job_whose_shards_match_its_completions() -> None:
    job = resources()["roomsync-backfill"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    ((_, container),) = containers(job)
    ctx = parse_command(container["args"])
    assert ctx.command.name == "backfill"
    shard_text = ctx.params["shard"]
    assert shard_text.startswith("index/")
    shards = [
        parse_shard(shard_text, {"JOB_COMPLETION_INDEX": str(index)})
        for index in range(spec["completions"])
    ]
    assert [shard.index for shard in shards] == list(range(spec["completions"]))
    assert {shard.count for shard in shards} == {spec["completions"]}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_manifests_hold_no_secret_values(path: Path) -> None:
    text = path.read_text()
    assert "kind: Secret" not in text and "stringData" not in text


# ---- `roomsync deploy`: the same files, shipped inside the package


def deploy(*args: str) -> Any:
    from click.testing import CliRunner

    return CliRunner().invoke(main, ["deploy", *args], catch_exceptions=False)


def test_deploy_kubernetes_prints_the_manifests_as_one_stream_kubectl_reads() -> None:
    result = deploy("kubernetes")
    assert result.exit_code == 0, result.output
    printed = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
    assert {doc["metadata"]["name"]: doc for doc in printed} == resources()
    assert printed[0]["metadata"]["name"] == "roomsync-db-upgrade"  # applied first


@pytest.mark.parametrize("kind", ["systemd", "cron"])
def test_deploy_writes_files_naming_this_roomsync_and_the_directory(
    kind: str, tmp_path: Path
) -> None:
    out = tmp_path / "roomsync"
    result = deploy(kind, "--output", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(out.iterdir()) == sorted(Path(line) for line in result.stdout.split())
    wrapper = out / "roomsync-cron.sh"
    assert os.access(wrapper, os.X_OK)
    assert wrapper.read_bytes() == (ROOT / "cron" / "roomsync-cron.sh").read_bytes()
    env = (out / "roomsync.env.example").read_text()
    assert f"ROOMSYNC={BIN / 'roomsync'}\n" in env  # this install's executable
    every = "".join(path.read_text() for path in out.iterdir())
    assert "/opt/roomsync" not in every
    if kind == "cron":
        (line,) = [x for x in (out / "roomsync.crontab").read_text().splitlines() if x[:1] == "*"]
        assert line.split()[5] == str(wrapper)
    else:
        assert f"ExecStart={wrapper} -\n" in (out / "roomsync-sync.service").read_text()
        assert "Persistent=true" in (out / "roomsync-sync.timer").read_text()
    again = deploy(kind, "--output", str(out))
    assert again.exit_code == 2 and "--force" in again.stderr
    assert deploy(kind, "--output", str(out), "--force").exit_code == 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_written_systemd_units_verify(tmp_path: Path) -> None:
    assert deploy("systemd", "-o", str(tmp_path)).exit_code == 0
    units = [str(tmp_path / "roomsync-sync.service"), str(tmp_path / "roomsync-sync.timer")]
    verify = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr


def test_printed_cron_files_keep_the_documented_paths() -> None:
    result = deploy("cron")
    assert result.exit_code == 0
    headers = [line for line in result.stdout.splitlines() if line.startswith("# ==> ")]
    assert headers == [
        "# ==> roomsync.crontab <==",
        "# ==> roomsync-cron.sh <==",
        "# ==> roomsync.env.example <==",
    ]
    assert "/opt/roomsync/cron/roomsync-cron.sh /etc/roomsync/roomsync.env" in result.stdout


def test_every_deploy_file_ships_in_the_package() -> None:
    """pyproject's package-data patterns must cover every file of cron/ and deploy/kubernetes/
    (a new file with a new suffix would otherwise be left out of the wheel silently); the
    wheel itself is checked in tests/test_wheel.py."""
    from etl.deploy import KINDS

    shipped = {name for files in KINDS.values() for _, name in files}
    sources = {p.name for p in (ROOT / "cron").iterdir()} | {p.name for p in MANIFESTS}
    assert shipped == sources
