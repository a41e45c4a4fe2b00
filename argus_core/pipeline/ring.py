"""FrameRing: one shared-memory block of fixed-size frame slots with per-slot metadata.

Decoder processes write converted frames straight into a slot and pass only the slot index on; inference
processes read numpy *views* of the slot (no copy, no pickling of pixels). Memory is bounded by
``slots × slot_bytes`` whatever the video length.

Ownership: the creating process (the engine's parent) owns the segment and unlinks it on ``close``.
Attaching processes do not register it with CPython's resource tracker (gh-82300: otherwise the tracker
may unlink a segment it did not create, or warn about "leaked" ones). The creator stays registered, so if it is
killed with ``-9`` the resource tracker still unlinks the segment when the last process exits.

The tracker dies too when the whole process group is killed (a container OOM-killed, ``kill -9 -PGID``, a
cgroup stopped): nothing of that engine is left to unlink its ring. So the creator also holds a shared
``flock`` on the segment for its lifetime, and :func:`reap_orphans` (run by every engine at start-up) unlinks
the ``argus-<pid>-*`` segments whose creator pid is gone *and* whose lock nobody holds: the kernel drops the
lock when the creator dies, however it dies, and a live creator in another PID namespace that shares this
/dev/shm still holds it.

Slot accounting (which slot is free, written, being inferred) lives in the parent, which hands slots to
children point-to-point; see :mod:`argus_core.pipeline.engine`. That is deliberate: a shared free-queue whose lock
is held by a child killed with ``-9`` would deadlock every other process.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
from multiprocessing import resource_tracker, shared_memory
from typing import Sequence

import numpy as np

#: Prefix of every segment name, so tests and operators can spot leftovers in /dev/shm.
SHM_PREFIX = "argus-"
SHM_DIR = "/dev/shm"

log = logging.getLogger("argus.engine")
MAX_VIEWS = 16
#: ``flags`` bits: the slot also holds the frame before / after the cut (pulp's neighbours, :class:`Sides`)
SIDE_BEFORE, SIDE_AFTER = 1, 2

# Per-slot metadata kept in the segment itself, so any process can interpret a slot from its index.
HEADER_DTYPE = np.dtype(
    [
        ("job", "<i8"),
        ("seq", "<i8"),
        ("offset_ms", "<i8"),
        ("src_w", "<i4"),
        ("src_h", "<i4"),
        ("n_views", "<i4"),
        ("flags", "<i4"),
        # (width, height, channels, byte offset inside the slot) per view
        ("views", "<i8", (MAX_VIEWS, 4)),
    ]
)


class RingFull(Exception):
    """The views of one frame do not fit in a slot."""


class FrameRing:
    """Shared-memory slots. Create with ``FrameRing.create``, attach in children with ``FrameRing.attach``."""

    def __init__(self, shm: shared_memory.SharedMemory, slots: int, slot_bytes: int, owner: bool) -> None:
        self._shm = shm
        self.name = shm.name
        self.slots = slots
        self.slot_bytes = slot_bytes
        self.owner = owner
        header_bytes = _round_up(HEADER_DTYPE.itemsize * slots, 4096)
        self._header = np.ndarray((slots,), dtype=HEADER_DTYPE, buffer=shm.buf, offset=0)
        self._data = np.ndarray((slots, slot_bytes), dtype=np.uint8, buffer=shm.buf, offset=header_bytes)
        #: the creator's liveness lock (see the module doc); -1 in attaching processes
        self._lock_fd = -1
        if owner:
            self._lock_fd = _hold_lock(self.name)

    # -- lifecycle ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, slots: int, slot_bytes: int) -> "FrameRing":
        if slots < 1 or slot_bytes < 1:
            raise ValueError("slots and slot_bytes must be positive")
        slot_bytes = _round_up(slot_bytes, 64)
        size = _round_up(HEADER_DTYPE.itemsize * slots, 4096) + slots * slot_bytes
        name = f"{SHM_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        return cls(shm, slots, slot_bytes, owner=True)

    @classmethod
    def attach(cls, name: str, slots: int, slot_bytes: int) -> "FrameRing":
        # Attach without registering: our children share the parent's resource tracker, and a second
        # registration would make the tracker unlink (or complain about) a segment the parent owns.
        register = resource_tracker.register
        resource_tracker.register = lambda *args, **kwargs: None  # type: ignore[assignment]
        try:
            shm = shared_memory.SharedMemory(name=name, create=False)
        finally:
            resource_tracker.register = register  # type: ignore[assignment]
        return cls(shm, slots, slot_bytes, owner=False)

    def close(self) -> None:
        """Detach; the owner also unlinks the segment. Safe to call twice."""
        if self._shm is None:
            return
        # Views into the buffer must be dropped before the mmap can close.
        self._header = None  # type: ignore[assignment]
        self._data = None  # type: ignore[assignment]
        shm, self._shm = self._shm, None  # type: ignore[assignment]
        try:
            shm.close()
        except BufferError:
            pass  # a caller still holds a view; the mapping goes away with the process
        if self.owner:
            try:
                shm.unlink()
            except FileNotFoundError:
                pass
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # after the unlink: a janitor never sees this segment unlocked
            self._lock_fd = -1

    def __enter__(self) -> "FrameRing":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing (decoder side) --------------------------------------------------------------------
    def layout(self, shapes: Sequence[tuple[int, int, int]]) -> list[int]:
        """Byte offsets for views of the given (h, w, c) shapes; raises RingFull when they don't fit."""
        offsets, pos = [], 0
        for h, w, c in shapes:
            offsets.append(pos)
            pos = _round_up(pos + h * w * c, 64)
        if pos > self.slot_bytes or len(shapes) > MAX_VIEWS:
            raise RingFull(f"frame needs {pos} bytes, slot has {self.slot_bytes}")
        return offsets

    def write_meta(
        self, slot: int, *, job: int, seq: int, offset_ms: int, src: tuple[int, int],
        shapes: Sequence[tuple[int, int, int]],
    ) -> None:
        offsets = self.layout(shapes)
        h = self._header[slot]
        h["job"], h["seq"], h["offset_ms"], h["flags"] = job, seq, offset_ms, 0  # flags: :meth:`add_flags`
        h["src_w"], h["src_h"], h["n_views"] = src[0], src[1], len(shapes)
        for i, ((hh, ww, cc), off) in enumerate(zip(shapes, offsets)):
            h["views"][i] = (ww, hh, cc, off)

    def view(self, slot: int, index: int) -> np.ndarray:
        """A writable/readable ``(h, w, c)`` uint8 view of one frame rendition in a slot (no copy)."""
        w, h, c, off = (int(v) for v in self._header[slot]["views"][index])
        return self._data[slot, off : off + h * w * c].reshape(h, w, c)

    def data(self) -> np.ndarray:
        """The ``[slots, slot_bytes]`` uint8 array of every slot (the GPU runner pins it and copies runs)."""
        return self._data

    def views(self, slot: int) -> list[np.ndarray]:
        return [self.view(slot, i) for i in range(int(self._header[slot]["n_views"]))]

    def meta(self, slot: int) -> dict[str, int]:
        h = self._header[slot]
        return {
            "job": int(h["job"]), "seq": int(h["seq"]), "offset_ms": int(h["offset_ms"]),
            "src_w": int(h["src_w"]), "src_h": int(h["src_h"]), "n_views": int(h["n_views"]),
            "flags": int(h["flags"]),
        }

    def add_flags(self, slot: int, flags: int) -> None:
        self._header[slot]["flags"] |= flags


def _round_up(n: int, k: int) -> int:
    return (n + k - 1) // k * k


def leftover_segments() -> list[str]:
    """Names of Argus segments in /dev/shm (for tests and operators)."""
    try:
        return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(SHM_PREFIX))
    except FileNotFoundError:  # pragma: no cover - non-Linux
        return []


def _hold_lock(name: str) -> int:
    """Open the segment's file and take a shared lock that lives exactly as long as this process keeps the
    descriptor (the kernel releases it on any death, SIGKILL included). -1 where /dev/shm is not a directory
    of files (non-Linux): no janitor there."""
    try:
        fd = os.open(os.path.join(SHM_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # pragma: no cover - non-Linux
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # pragma: no cover - a fresh random name nobody else can hold
        os.close(fd)
        return -1
    return fd


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def reap_orphans() -> list[str]:
    """Unlink Argus segments left by engines that died without cleaning up; returns the names unlinked.

    A segment goes only if the pid in its name (``argus-<pid>-<hex>``) is not a live process here *and* no
    process holds its lock. The pid test covers a creator between ``create`` and taking its lock; the lock
    covers a reused pid number (alive: kept, harmlessly, until that process exits) and creators in another PID
    namespace (alive: locked). Names that do not parse are never touched."""
    reaped: list[str] = []
    for name in leftover_segments():
        pid_text = name[len(SHM_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        path = os.path.join(SHM_DIR, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue  # gone meanwhile, or not ours to open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):  # pragma: no cover
                log.warning("cannot lock %s: %s", path, e)
            os.close(fd)
            continue  # its creator (or an inheriting child of it) is alive somewhere
        try:
            os.unlink(path)
            reaped.append(name)
        except OSError:
            pass  # another janitor was first, or /dev/shm is not ours to write
        finally:
            os.close(fd)
    if reaped:
        log.warning("unlinked %d shared-memory segment(s) of dead engines: %s", len(reaped), ", ".join(reaped))
    return reaped
