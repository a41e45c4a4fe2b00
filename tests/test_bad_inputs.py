"""Bad input gets the documented status and message, and leaks nothing (CONTRACT §1, §2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from argus_core import Engine
from argus_core.errors import ArgusError
from argus_core.pipeline.ring import leftover_segments

from .conftest import child_pids


@pytest.fixture(scope="module")
def engine():
    with Engine(decoders=1, workers=1) as e:
        yield e


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, vids):
    root = tmp_path_factory.mktemp("bad")
    text = root / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    good = vids["photos"].read_bytes()
    truncated = root / "truncated.mp4"
    truncated.write_bytes(good[: len(good) // 2])  # moov atom is at the end: header lost
    png = root / "image.mp4"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    return {"text": text, "empty": empty, "truncated": truncated, "png": png, "missing": root / "missing.mp4"}


def body(uri, vframe=None, ops=None):
    return {"data": {"uri": str(uri)}, "params": {"vframe": vframe or {}},
            "ops": ops if ops is not None else [{"op": "pulp"}]}


CASES = [
    ("missing", None, 424, "cannot find the video"),
    ("text", None, 400, "cannot open the file"),
    ("empty", None, 400, "cannot open the file"),
    ("truncated", None, 400, "cannot open the file"),
    ("png", None, 400, "cannot open the file"),
    ("good", {"mode": 3}, 400, "invalid mode, allow mode is [0, 1]"),
    ("good", {"mode": 0, "interval": 10.5}, 400, "invalid interval, allow interval is [0, 10]"),
    ("good", {"mode": 0, "ss": -2}, 400, "invalid starttime"),
    ("good", {"mode": 0, "t": -2}, 400, "invalid duration"),
]


@pytest.mark.parametrize("kind,vframe,status,message", CASES)
def test_bad_input(engine, bad_files, vids, kind, vframe, status, message):
    uri = vids["photos"] if kind == "good" else bad_files[kind]
    kids = child_pids()
    segments = [n for n in leftover_segments() if n.startswith(f"argus-{os.getpid()}-")]
    with pytest.raises(ArgusError) as err:
        engine.analyze(body(uri, vframe), timeout=60)
    assert (err.value.status, err.value.message) == (status, message)
    # the engine's own processes and ring are all there is, before and after
    assert child_pids() == kids
    assert [n for n in leftover_segments() if n.startswith(f"argus-{os.getpid()}-")] == segments


@pytest.mark.parametrize("ops,message", [([], "empty op"), ([{"op": "nope"}], "bad op"),
                                         ([{"op": "terror_complex"}], "bad op")])
def test_unknown_or_missing_ops(engine, vids, ops, message):
    with pytest.raises(ArgusError) as err:
        engine.analyze(body(vids["photos"], ops=ops))
    assert (err.value.status, err.value.message) == (400, message)


def test_bad_input_does_not_harm_other_jobs(engine, bad_files, vids):
    good = engine.submit(body(vids["photos"], {"mode": 0, "interval": 0.5}))
    bad = engine.submit(body(bad_files["text"]))
    with pytest.raises(ArgusError):
        bad.result(timeout=60)
    assert good.result(timeout=60)["pulp"]["segments"]


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_broken_model_makes_op_refuse(tmp_path, vids, no_leaks, damage):
    # a model that fails its output check, or is missing → pulp is "bad op", never fake scores
    src = __import__("argus_core.runtime.manifest", fromlist=["MODELS_DIR"]).MODELS_DIR / "nsfwjs"
    dst = tmp_path / "nsfwjs"
    shutil.copytree(src, dst)
    model = dst / "model.onnx"
    if damage == "missing":
        model.unlink()
    else:
        raw = bytearray(model.read_bytes())
        mid = len(raw) // 2
        raw[mid : mid + 200_000] = bytes(range(256)) * (200_000 // 256) + bytes(200_000 % 256)
        model.write_bytes(bytes(raw))
    with Engine(decoders=1, workers=1, models_dir=tmp_path) as e:
        assert "pulp" not in e.known_ops() and "pulp" in e.unavailable
        with pytest.raises(ArgusError) as err:
            e.analyze(body(vids["photos"]))
        assert err.value.message == "bad op"


def test_engine_close_leaves_nothing(vids, no_leaks):
    with Engine(decoders=2, workers=1) as e:
        name = e.ring_name
        assert name in leftover_segments()
        e.analyze(body(vids["photos"], {"mode": 0, "interval": 3}))
    assert name not in leftover_segments()


@pytest.mark.parametrize("args,code,message", [
    (["analyze", "/nonexistent.mp4", "--op", "pulp"], 2, "cannot find the video"),
    (["analyze", "{video}", "--op", "pulp", "--mode", "0", "--interval", "11"], 2,
     "invalid interval, allow interval is [0, 10]"),
    (["analyze", "{video}", "--op", "bogus"], 2, "bad op"),
    (["analyze", "{video}"], 2, "empty op"),
])
def test_cli_bad_input(vids, args, code, message):
    args = [a.replace("{video}", str(vids["photos"])) for a in args]
    p = subprocess.run([sys.executable, "-m", "argus_http.cli", *args], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == code
    out = __import__("json").loads(p.stdout)
    assert out["error"] == message and set(out) <= {"error", "detail"}  # detail: why (issue 13)
    assert "Traceback" not in p.stderr


def test_cli_analyze(vids):
    import json

    p = subprocess.run([sys.executable, "-m", "argus_http.cli", "analyze", str(vids["photos"]), "--op", "pulp",
                        "--mode", "0", "--interval", "5"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [c["offset"] for s in out["pulp"]["segments"] for c in s["cuts"]] == [0, 5000, 10000]
    assert p.stderr == ""  # no progress bar when stderr is not a terminal


def test_cli_progress_bar_on_request(vids):
    p = subprocess.run([sys.executable, "-m", "argus_http.cli", "analyze", str(vids["photos"]), "--op", "pulp",
                        "--mode", "0", "--interval", "0.5", "--progress", "on"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "100.0%" in p.stderr and "frames" in p.stderr


def test_video_longer_than_the_limit(vids, no_leaks):
    with Engine(decoders=1, workers=1, ops=["pulp"], max_duration=10) as e:
        with pytest.raises(ArgusError) as err:
            e.analyze(body(vids["photos"]))  # 15 s
        assert (err.value.status, err.value.message) == (400, "video too long, max duration is 10 s")
