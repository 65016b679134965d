"""Dahua file names -> (channel, kind, start, end, snapshot): every family, and garbage."""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.recordings import Parsed, parse

D = datetime.fromisoformat


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # classic: <date>/<ccc>/dav/<HH>/<start>-<end>[K][0@0][0].dav|mp4
        (
            "NVR1/2026-12-06/001/dav/15/15.00.00-15.05.00[M][0@0][0].dav",
            Parsed(1, "M", D("2026-12-06 15:00"), D("2026-12-06 15:05"), False),
        ),
        (
            "rec/AMC0009L/2019-05-09/004/dav/21/21.04.49-21.05.14[A][0@0][0].mp4",
            Parsed(4, "A", D("2019-05-09 21:04:49"), D("2019-05-09 21:05:14"), False),
        ),
        (
            "x/2026-12-06/016/dav/09/09.10.00-09.10.30[I][1@0][2].dav",
            Parsed(16, "I", D("2026-12-06 09:10"), D("2026-12-06 09:10:30"), False),
        ),
        (  # lower-case flag and extension still read
            "x/2026-12-06/002/dav/09/09.10.00-09.10.30[f][0@0][0].DAV",
            Parsed(2, "F", D("2026-12-06 09:10"), D("2026-12-06 09:10:30"), False),
        ),
        (  # no flag: a regular recording
            "x/2026-12-06/001/dav/10/10.00.00-11.00.00.dav",
            Parsed(1, "R", D("2026-12-06 10:00"), D("2026-12-06 11:00"), False),
        ),
        # a clip crossing midnight ends the next day
        (
            "x/2026-12-06/001/dav/23/23.59.59-00.00.30[R][0@0][0].dav",
            Parsed(1, "R", D("2026-12-06 23:59:59"), D("2026-12-07 00:00:30"), False),
        ),
        (
            "x/2026-12-31/003/dav/23/23.58.00-00.02.00[M][0@0][0].mp4",
            Parsed(3, "M", D("2026-12-31 23:58"), D("2027-01-01 00:02"), False),
        ),
        # snapshots: jpg/<HH>/<MM>/<SS>[K][0@0][n].jpg
        (
            "x/2026-12-06/001/jpg/15/02/33[M][0@0][0].jpg",
            Parsed(1, "M", D("2026-12-06 15:02:33"), D("2026-12-06 15:02:33"), True),
        ),
        (
            "/AMC0009L_M35704/2020-05-28/001/jpg/09/32/52[M][0@0][3].jpg",
            Parsed(1, "M", D("2020-05-28 09:32:52"), D("2020-05-28 09:32:52"), True),
        ),
        # one firmware: jpg/<HH>/<MM.SS>[K]...
        (
            "x/2020-05-28/002/jpg/08/25.03[M][0@0][0].jpg",
            Parsed(2, "M", D("2020-05-28 08:25:03"), D("2020-05-28 08:25:03"), True),
        ),
        # newer firmwares: <date>/<HH>hour/mp4/... and .../jpg/<HH.MM.SS>...
        (
            "cam/2026-12-06/08hour/mp4/08.00.00-08.05.00[A][0@0][0].mp4",
            Parsed(1, "A", D("2026-12-06 08:00"), D("2026-12-06 08:05"), False),
        ),
        (
            "cam/2026-12-06/08hour/jpg/08.01.02[I][0@0][0].jpg",
            Parsed(1, "I", D("2026-12-06 08:01:02"), D("2026-12-06 08:01:02"), True),
        ),
        # channel and timestamp in the name
        (
            "d/001_20241002081011_[A][0@0][0].jpg",
            Parsed(1, "A", D("2024-10-02 08:10:11"), D("2024-10-02 08:10:11"), True),
        ),
        (
            "005_20241002081011[M][0@0][0].jpg",
            Parsed(5, "M", D("2024-10-02 08:10:11"), D("2024-10-02 08:10:11"), True),
        ),
        # NVR exports: no flag, full timestamps
        (
            "exports/NVR_ch1_main_20241002081011_20241002081530.dav",
            Parsed(1, "R", D("2024-10-02 08:10:11"), D("2024-10-02 08:15:30"), False),
        ),
        (
            "NVR_ch12_sub_20241002235000_20241003001000.dav",
            Parsed(12, "R", D("2024-10-02 23:50"), D("2024-10-03 00:10"), False),
        ),
        # names in GB2312 or other non-UTF-8 bytes still parse by their digits
        (
            "\udcc9\udce3/2026-12-06/001/dav/15/15.00.00-15.05.00[M][0@0][0].dav",
            Parsed(1, "M", D("2026-12-06 15:00"), D("2026-12-06 15:05"), False),
        ),
    ],
)
def test_names_parse(path: str, expected: Parsed) -> None:
    assert parse(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/",
        "DVRWorkDirectory",
        "x/2026-12-06/001/dav/15/15.00.00-15.05.00[M][0@0][0].mp4_",  # in progress
        "x/2026-12-06/001/dav/15/15.00.00-15.05.00[M][0@0][0].idx",
        "x/2026-12-06/001/dav/15/15.00.00-15.05.00[Z][0@0][0].dav",  # unknown flag
        "x/2026-12-06/001/dav/15/15.00.00-15.05.00[MM][0@0][0].dav",
        "x/2026-02-30/001/dav/15/15.00.00-15.05.00[M][0@0][0].dav",  # no such day
        "x/2026-12-06/001/dav/25/25.00.00-25.05.00[M][0@0][0].dav",  # no such hour
        "x/2026-12-06/001/dav/15/15.61.00-15.62.00[M][0@0][0].dav",
        "x/2026-12-06/000/dav/15/15.00.00-15.05.00[M][0@0][0].dav",  # channel 0
        "x/001/dav/15/15.00.00-15.05.00[M][0@0][0].dav",  # no date folder
        "x/2026-12-06/001/dav/15/15.00-15.05[M][0@0][0].dav",
        "x/2026-12-06/001/dav/15/15.00.00-15.05.00[M][0@0][0].avi",
        "x/2026-12-06/001/jpg/33[M][0@0][0].jpg",  # seconds with no hour or minute
        "x/2026-12-06/001/jpg/15/61/33[M][0@0][0].jpg",
        "x/2026-12-06/001/dav/15/15.00.00-15.05.00[M][0@0][0].dav/extra",
        "NVR_ch1_main_20241002081530_20241002081011.dav",  # ends before it starts
        "NVR_ch1_main_20241002081011_20241009081011.dav",  # a week long
        "NVR_ch1_main_20241302081011_20241302081530.dav",  # month 13
        "NVR_ch0_main_20241002081011_20241002081530.dav",
        "001_99999999999999_[A][0@0][0].jpg",
        "x/2026-12-06/001/dav/15/" + "9" * 300 + ".dav",
        "x/2026-12-06/001/dav/15/15.00.00-15.05.00[M][0@0][0].dav\n[R]",
        "../../etc/passwd",
        "x/2026-12-06/001/jpg/15/02/33[M][0@0][0].jpg.exe",
    ],
)
def test_garbage_is_none(path: str) -> None:
    assert parse(path) is None
