"""`cam2drive drive fsck`: the index against the bucket (gateway/fsck.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.commands.common import JsonOpt
from cli.context import app_state
from cli.output import emit, fail, out, report

drive_app = typer.Typer(help="Drives: check the index against the bucket.", no_args_is_help=True)


@drive_app.command("fsck")
def drive_fsck(
    drive: Annotated[
        list[int] | None, typer.Option("--drive", help="Only this drive id (repeatable).")
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(help="Make the index agree with the bucket (never deletes an object)."),
    ] = False,
    after_restore: Annotated[
        bool,
        typer.Option(
            "--after-restore",
            help="First release every reservation: the restored ones belong to stopped "
            "gateways. Only with every cam2drive service stopped.",
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Compare each drive's index with its objects: orphans (in the bucket, not in
    the index), missing objects, size mismatches. With --repair, orphans are
    indexed under the name the bucket keeps for them (lost+found/ when none),
    missing files leave the index, sizes and counters are corrected.

    Exits 2 when problems were found and not repaired."""
    from gateway.fsck import check_drives, release_reservations

    state = app_state()
    if after_restore and not repair:
        fail("--after-restore goes with --repair")
    released = release_reservations(state.engine) if after_restore else 0
    checks = check_drives(state.engine, state.store, drive, repair=repair)
    if json_:
        emit({"released_reservations": released, "drives": [c.as_dict() for c in checks]}, True)
    else:
        rows = [
            {k: v for k, v in c.as_dict().items() if k != "findings"} for c in checks if not c.clean
        ]
        out.print(f"{len(checks)} drives checked, {len(rows)} with problems")
        if rows:
            emit(rows, False)
        for c in checks:
            for f in c.findings:
                where = f" -> {f.repaired_as}" if f.repaired_as else ""
                line = f"  drive {c.drive_id} {f.kind}: {f.path or '(no name)'} [{f.key}]{where}"
                out.print(line, markup=False)
    if any(not c.clean and not c.repaired for c in checks):
        fail("the index and the bucket disagree; run with --repair to fix the index", code=2)


@drive_app.command("index-recordings")
def drive_index_recordings(
    drive: Annotated[
        list[int] | None, typer.Option("--drive", help="Only this drive id (repeatable).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Put files uploaded before the recordings index existed (migration 0013) on
    the portal's timeline; once after upgrading, safe while gateways run."""
    from gateway.recordings import backfill

    added = backfill(app_state().engine, drive)
    report({"added": added}, json_, f"{added} recordings indexed")
