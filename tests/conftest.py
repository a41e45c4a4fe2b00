"""Shared fixtures: generated videos (cached per session) and leak checks."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
from pathlib import Path

import pytest

from argus_core.pipeline.ring import leftover_segments

from . import videos


@pytest.fixture(scope="session")
def mixed():
    """The constructed shot set (tests/abstract_media.py: real footage joined by cuts, transitions and
    flashes; truth by construction), built once per cache."""
    from . import abstract_media as am
    from .data import DataUnavailable

    try:
        return am.build_mixed()
    except DataUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def vids(tmp_path_factory) -> dict[str, Path]:
    """Lazily generated test videos, keyed by name."""
    root = tmp_path_factory.mktemp("videos")
    cache: dict[str, Path] = {}

    class Lazy(dict):
        def __getitem__(self, name: str) -> Path:
            if name not in cache:
                cache[name] = _make(root, name)
            return cache[name]

    return Lazy()


def _make(root: Path, name: str) -> Path:
    p = root / f"{name}.mp4"
    if name == "num10_gop25":
        return videos.numbered_video(p, 10, fps=25, gop=25)
    if name == "num10_gop60_30fps":
        return videos.numbered_video(p, 10, fps=30, gop=60)
    if name == "num30_gop300":
        return videos.numbered_video(p, 30, fps=25, gop=300, bframes=0)
    if name == "num20_gop250":
        return videos.numbered_video(p, 20, fps=25, gop=250)
    if name == "num10_bf3":  # x264's B-pyramid: some B-frames are references, others not
        return videos.numbered_video(p, 10, fps=25, gop=50, bframes=3)
    if name == "num10_bf3_trim":  # cut with -c copy: the edit list hides the first 1.3 s of samples
        src = _make(root, "num10_bf3")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "1.3", "-i", str(src), "-c", "copy", str(p)],
                       check=True)
        return p
    if name == "num10_bf0":
        return videos.numbered_video(p, 10, fps=25, gop=25, bframes=0)
    if name == "num10_ts":  # MPEG-TS: no index, timestamps only on the packets
        return videos.numbered_video(root / f"{name}.ts", 10, fps=25, gop=25)
    if name == "num10_mkv":  # Matroska: some packets carry no dts
        return videos.numbered_video(root / f"{name}.mkv", 10, fps=25, gop=25)
    if name == "photos":
        return videos.photo_video(p, per_photo=3.0)
    if name == "photos_long":
        return videos.photo_video(p, per_photo=6.0, order=[0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    raise KeyError(name)


def child_pids() -> set[int]:
    """Live child processes of this test process (from /proc, independent of multiprocessing)."""
    me = os.getpid()
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == me and fields[0] != "Z":
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if b"resource_tracker" in fh.read():
                        continue  # CPython's own helper, shared by the whole session
                out.add(int(entry))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return out


@pytest.fixture
def no_leaks():
    """Asserts that a test leaves no Argus shared memory and no extra child processes behind.

    Only segments created by this process count (their names carry its pid): other test runs may share
    the machine."""
    mine = f"argus-{os.getpid()}-"
    shm_before = {n for n in leftover_segments() if n.startswith(mine)}
    kids_before = child_pids()
    yield
    multiprocessing.active_children()  # reap
    leaked = {n for n in leftover_segments() if n.startswith(mine)} - shm_before
    assert leaked == set(), "leaked /dev/shm segments"
    extra = child_pids() - kids_before
    assert not extra, f"leaked child processes: {extra}"
