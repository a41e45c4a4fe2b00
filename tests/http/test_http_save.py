"""params.save (CONTRACT §10): kept cuts as JPEG under <prefix>/<video_id>/<offset>.jpg; uri in the cuts."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from argus_http.save import FrameStore, cut_key, jpeg_bytes

from conftest import Receiver, running_server, video_body


def test_keys_cannot_escape_the_store(tmp_path: Path) -> None:
    assert cut_key("a/b", "vid", 1500) == "a/b/vid/1500.jpg"
    assert cut_key("../../etc", "v", 0) == "etc/v/0.jpg"
    assert cut_key("/abs//x/./", "v", 0) == "abs/x/v/0.jpg"
    assert cut_key(None, "v", 7) == "v/7.jpg"
    store = FrameStore(str(tmp_path / "s"))
    uri = store.put("../x/1.jpg", b"data")
    assert uri == (tmp_path / "s" / "x" / "1.jpg").as_uri()
    assert not list((tmp_path / "s" / "x").glob(".tmp-*"))


def test_fsspec_store() -> None:
    # any fsspec URL works as the store (CONTRACT §10); fsspec's in-memory filesystem is a real one
    fsspec = __import__("pytest").importorskip("fsspec")
    store = FrameStore("memory://argus-frames/run1")
    uri = store.put("pre/../vid/0.jpg", b"\xff\xd8jpeg")
    assert uri == "memory:///argus-frames/run1/pre/vid/0.jpg"
    with fsspec.open(uri, "rb") as fh:
        assert fh.read() == b"\xff\xd8jpeg"


def test_jpeg_round_trip() -> None:
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, 32:] = (250, 10, 10)
    data = jpeg_bytes(img)
    assert data[:2] == b"\xff\xd8"
    import io

    with av.open(io.BytesIO(data)) as c:
        out = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert out.shape == (48, 64, 3) and out[24, 48, 0] > 200 and out[24, 8].max() < 30


def colour_second(path: Path) -> int:
    """The test videos encode the second in the blue channel (sec * 90 % 256) — read it back."""
    with av.open(str(path)) as c:
        px = next(c.decode(video=0)).to_ndarray(format="rgb24")
    blue = int(np.median(px[..., 2]))
    return min(range(8), key=lambda s: abs((s * 90) % 256 - blue))


def test_sync_save(tmp_path: Path, engine, media_dir: Path, short_video: Path) -> None:
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (srv, api):
        body = video_body(short_video.as_uri(), vframe={"mode": 0, "interval": 1}, save={"prefix": "pre/fix"})
        st, _, out = api.call("POST", "/v1/video/saved-1", body)
    assert st == 200
    cuts = [c for s in out["pulp"]["segments"] for c in s["cuts"]]
    assert [c["offset"] for c in cuts] == [0, 1000, 2000, 3000]
    root = Path(srv.s.save_store)
    for c in cuts:
        path = root / "pre" / "fix" / "saved-1" / f"{c['offset']}.jpg"
        assert c["uri"] == path.as_uri()
        assert colour_second(path) == c["offset"] // 1000  # the frame shown at that offset


def test_async_save_in_callbacks_and_result(tmp_path: Path, engine, media_dir: Path, short_video: Path,
                                            receiver: Receiver) -> None:
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (srv, api):
        body = video_body(short_video.as_uri(), vframe={"mode": 0, "interval": 2}, save={"prefix": "a"},
                          ops=[{"op": "pulp", "hookURL_segment": receiver.url("/seg")}], **{"async": True})
        job_id = api.call("POST", "/v1/video/saved-2", body)[2]["job"]
        job = api.wait_status(job_id, {"FINISHED"})
        seg = receiver.wait(lambda rs: len(rs) >= 1)[0].json()
    uris = [c.get("uri") for s in job["result"]["pulp"]["segments"] for c in s["cuts"]]
    assert uris == [(Path(srv.s.save_store) / "a" / "saved-2" / f"{o}.jpg").as_uri() for o in (0, 2000)]
    assert [c["uri"] for c in seg["result"]["cuts"]] == uris[: len(seg["result"]["cuts"])]


def test_dropped_cuts_are_not_saved(tmp_path: Path, engine, media_dir: Path, short_video: Path) -> None:
    """§4/§10: a cut removed by the label filter is not saved."""
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (srv, api):
        body = video_body(short_video.as_uri(), vframe={"mode": 0, "interval": 1}, save={"prefix": "d"},
                          ops=[{"op": "pulp", "params": {"labels": [{"label": l, "select": 1} for l in "012"]}}])
        st, _, out = api.call("POST", "/v1/video/dropped", body)
    assert (st, out) == (200, {"pulp": {"labels": [], "segments": [], "suggestion": "pass"}})  # §14
    assert not (Path(srv.s.save_store) / "d").exists()


def test_save_failure_leaves_uri_out(tmp_path: Path, engine, media_dir: Path, short_video: Path) -> None:
    """§10: a store that cannot be written → no uri, and the request still succeeds."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with running_server(tmp_path, engine, media_root=str(media_dir), save_store=str(blocker)) as (_, api):
        body = video_body(short_video.as_uri(), vframe={"mode": 0, "interval": 2}, save={"prefix": "p"})
        st, _, out = api.call("POST", "/v1/video/nosave", body)
    assert st == 200
    cuts = [c for s in out["pulp"]["segments"] for c in s["cuts"]]
    assert cuts and all("uri" not in c for c in cuts)
