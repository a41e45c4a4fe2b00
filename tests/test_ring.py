"""FrameRing and process-failure behaviour: zero-copy transfer, backpressure, kill -9 of any process."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from argus_core import Engine
from argus_core.errors import ArgusError
from argus_core.pipeline.ring import FrameRing, leftover_segments

from .conftest import child_pids


def _child_writes(name, slots, slot_bytes, conn):
    ring = FrameRing.attach(name, slots, slot_bytes)
    for slot in range(slots):
        ring.write_meta(slot, job=7, seq=slot, offset_ms=slot * 40, src=(64, 32), shapes=[(32, 64, 3), (8, 8, 3)])
        ring.view(slot, 0)[:] = slot
        ring.view(slot, 1)[:] = 255 - slot
        conn.send(slot)
    ring.close()
    conn.send("bye")


def test_ring_transfers_between_processes_without_pickling_pixels(no_leaks):
    ring = FrameRing.create(4, 64 * 32 * 3 + 8 * 8 * 3)
    try:
        parent, child = mp.get_context("spawn").Pipe()
        p = mp.get_context("spawn").Process(target=_child_writes, args=(ring.name, 4, ring.slot_bytes, child))
        p.start()
        seen = []
        while (msg := parent.recv()) != "bye":
            assert isinstance(msg, int)  # only the index crosses the pipe
            seen.append(msg)
        p.join(10)
        for slot in seen:
            meta = ring.meta(slot)
            assert meta == {"job": 7, "seq": slot, "offset_ms": slot * 40, "src_w": 64, "src_h": 32, "n_views": 2, "flags": 0}
            big, small = ring.views(slot)
            assert big.shape == (32, 64, 3) and np.all(big == slot)
            assert small.shape == (8, 8, 3) and np.all(small == 255 - slot)
            assert np.shares_memory(big, ring.view(slot, 0))  # views, not copies
    finally:
        ring.close()
    assert ring.name not in leftover_segments()


def test_ring_rejects_frames_that_do_not_fit():
    from argus_core.pipeline.ring import RingFull

    with FrameRing.create(1, 1000) as ring:
        with pytest.raises(RingFull):
            ring.layout([(100, 100, 3)])


def test_backpressure_with_a_slow_consumer(vids, monkeypatch, no_leaks):
    monkeypatch.setenv("ARGUS_FAULT_INFER_DELAY_MS", "30")
    with Engine(decoders=1, workers=1, slots=4, max_batch=2) as e:
        out = e.analyze({"data": {"uri": str(vids["photos"])}, "params": {"vframe": {"mode": 0, "interval": 0.2}},
                         "ops": [{"op": "pulp"}]})
        offsets = [c["offset"] for s in out["pulp"]["segments"] for c in s["cuts"]]
        assert offsets == [k * 200 for k in range(75)]
        stats = e.stats()
        # the decoder is never more than the ring's slots ahead of inference
        assert 0 < stats["max_lead"] <= 4
        assert stats["decoded"] == stats["frames"] == 75


def _wait_for(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("victim,message", [("workers", "inference worker crashed"),
                                            ("decoders", "decoder crashed")])
def test_kill_9_of_a_child_fails_only_its_job_and_the_engine_recovers(vids, monkeypatch, no_leaks, victim, message):
    monkeypatch.setenv("ARGUS_FAULT_INFER_DELAY_MS", "150")  # keep a batch in flight
    body = {"data": {"uri": str(vids["photos_long"])}, "params": {"vframe": {"mode": 0, "interval": 0.1}},
            "ops": [{"op": "pulp"}]}
    with Engine(decoders=1, workers=1, max_batch=4) as e:
        job = e.submit(body)
        assert _wait_for(lambda: e.stats()["frames"] >= 4)
        os.kill(e.child_pids()[victim][0], signal.SIGKILL)
        with pytest.raises(ArgusError) as err:
            job.result(timeout=30)
        assert (err.value.status, err.value.message) == (500, message)
        assert _wait_for(lambda: e.stats()["restarts"] == 1)
        monkeypatch.delenv("ARGUS_FAULT_INFER_DELAY_MS")
        ok = e.analyze({**body, "params": {"vframe": {"mode": 0, "interval": 5}}}, timeout=60)
        assert len(ok["pulp"]["segments"][0]["cuts"]) == 12
        # every slot is accounted for: free, or granted to a (now idle) decoder
        acct = e.slot_accounting()
        held = acct["decoders"] + acct["workers"]
        assert acct["free"] + held == e.n_slots and acct["distinct_free"] == acct["free"]


def test_exception_inside_the_with_block_leaks_nothing(no_leaks):
    with pytest.raises(RuntimeError):
        with Engine(decoders=1, workers=1):
            raise RuntimeError("boom")


def test_kill_9_of_the_parent_leaks_nothing(vids, tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from argus_core import Engine
        e = Engine(decoders=1, workers=1)
        job = e.submit({{"data": {{"uri": {str(vids['photos_long'])!r}}}, "params": {{"vframe": {{"mode": 0, "interval": 0.05}}}},
                        "ops": [{{"op": "pulp"}}]}})
        pids = e.child_pids()
        print(e.ring_name, *pids["decoders"], *pids["workers"], flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().split()
        name, pids = line[0], [int(x) for x in line[1:]]
        assert name in leftover_segments()
        time.sleep(0.5)
        p.send_signal(signal.SIGKILL)
        p.wait(10)

        def gone(pid):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] == "Z"

        assert _wait_for(lambda: all(gone(pid) for pid in pids)), "children outlived their parent"
        assert _wait_for(lambda: name not in leftover_segments()), "shared memory outlived the engine"
    finally:
        if p.poll() is None:
            p.kill()


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_kill_9_of_the_whole_process_group_leaves_a_segment_that_the_next_engine_unlinks():
    """Issue 10: when the whole group dies (container OOM-kill, ``kill -9 -PGID``) the resource tracker dies
    with the engine, so nothing of it can unlink the ring; the next engine on the machine does, at start-up."""
    script = textwrap.dedent("""
        import time
        from argus_core.pipeline.ring import FrameRing
        ring = FrameRing.create(2, 4096)
        print(ring.name, flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        name = p.stdout.readline().strip()
        assert name in leftover_segments()
        os.killpg(p.pid, signal.SIGKILL)  # the creator and its resource tracker, at once
        p.wait(10)
        time.sleep(0.3)
        assert name in leftover_segments(), "the tracker outlived the group: this test proves nothing"
        with Engine(decoders=1, workers=1, ops=["pulp"]) as e:
            assert name not in leftover_segments()
            assert e.ring_name in leftover_segments()  # its own ring is live and locked, never reaped
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        (Path("/dev/shm") / name).unlink(missing_ok=True)


def test_reap_orphans_unlinks_only_unlocked_segments_of_dead_pids():
    from argus_core.pipeline.ring import _hold_lock, reap_orphans

    dead = _dead_pid()
    tag = os.urandom(4).hex()
    names = {"live": None, "orphan": f"argus-{dead}-{tag}a", "locked": f"argus-{dead}-{tag}b",
             "odd": f"argus-x{tag}-1"}
    for key in ("orphan", "locked", "odd"):
        (Path("/dev/shm") / names[key]).write_bytes(b"\0" * 64)
    held = _hold_lock(names["locked"])  # a live creator in another PID namespace sharing /dev/shm
    ring = FrameRing.create(2, 4096)
    names["live"] = ring.name
    try:
        reaped = reap_orphans()
        assert names["orphan"] in reaped
        left = set(leftover_segments())
        assert names["orphan"] not in left
        assert {names["locked"], names["odd"], names["live"]} <= left
        os.close(held)  # that creator dies: its segment goes at the next sweep
        assert names["locked"] in reap_orphans()
    finally:
        ring.close()
        for n in names.values():
            (Path("/dev/shm") / n).unlink(missing_ok=True)
    assert ring.name not in leftover_segments()
