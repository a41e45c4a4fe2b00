"""The timeline report (CONTRACT §14): thumbnails are the right frames, the page is self-contained and safe.

Browser checks (geometry, clicks, timing) are in ``test_report_browser.py``."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from argus_core import aggregate, verdict
from argus_http import report
from argus_http.save import jpeg_bytes

from . import videos


def _decode_data_uri(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/jpeg;base64,")
    frame = report._decode_jpeg(base64.b64decode(uri.split(",", 1)[1]))
    return frame.to_ndarray(format="rgb24")


def _result(offsets: list[int], uris: dict[int, str] | None = None) -> dict:
    cuts = [{"offset": o, "labels": [{"label": "2", "score": 0.9}],
             "result": {"label": 2, "score": 0.9, "review": False}, **({"uri": uris[o]} if uris and o in uris else {})}
            for o in offsets]
    return {"pulp": aggregate(cuts, {}, {"mode": 1, "interval": 2})}


def test_thumbnails_are_the_frames_at_the_cut_offsets(vids):
    """Grabbed at each cut's offset (the frame shown then, as the sampler defines it), 160 px wide, with the
    source frame's size kept for pts; the duration is the video's."""
    video = vids["num10_gop25"]  # 25 fps, frame i shows i; 320x180
    offsets = [0, 1000, 2040, 5000, 9960]
    thumbs, duration = report.grab_thumbs(_result(offsets), str(video))
    assert sorted(thumbs) == offsets
    assert duration == 10000
    for o in offsets:
        t = thumbs[o]
        assert (t.width, t.height) == (320, 180)
        img = _decode_data_uri(t.uri)
        assert img.shape[1] == report.THUMB_WIDTH
        assert videos.read_index(img) == o * 25 // 1000, o


def test_saved_cut_jpeg_is_preferred_and_reads_stay_in_the_store(vids, tmp_path: Path):
    video = vids["num10_gop25"]
    store = tmp_path / "store"
    store.mkdir()
    saved = store / "1000.jpg"
    saved.write_bytes(jpeg_bytes(videos.index_card(777, 320, 180)))
    outside = tmp_path / "2000.jpg"
    outside.write_bytes(jpeg_bytes(videos.index_card(555, 320, 180)))
    res = _result([1000, 2000], {1000: saved.as_uri(), 2000: outside.as_uri()})
    thumbs, _ = report.grab_thumbs(res, str(video), read_saved=report.file_reader([str(store)]))
    assert videos.read_index(_decode_data_uri(thumbs[1000].uri)) == 777      # the saved JPEG
    assert videos.read_index(_decode_data_uri(thumbs[2000].uri)) == 50       # outside the store: grabbed


def test_unreadable_source_gives_a_page_without_thumbnails(tmp_path: Path):
    page = report.build(_result([0, 1000]), source=str(tmp_path / "gone.mp4"))
    data = _page_json(page)
    assert data["thumbs"] == {} and len(data["ops"][0]["segs"]) == 1


def test_pick_offsets_first_cuts_first_then_spread():
    res = {"pulp": {"labels": [], "segments": [
        {"offset_begin": i * 10000, "offset_end": i * 10000 + 9000, "labels": [],
         "cuts": [{"offset": i * 10000 + k * 1000} for k in range(10)]} for i in range(20)]}}
    got = report.pick_offsets(res, 30)
    assert len(got) == 30 and {i * 10000 for i in range(20)} <= set(got)
    few = report.pick_offsets(res, 5)
    assert len(few) == 5 and few[0] == 0 and few[-1] == 190000


def _page_json(page: str) -> dict:
    m = re.search(r'<script id="argus-data" type="application/json">(.*?)</script>', page, re.S)
    assert m
    return json.loads(m.group(1))


def test_page_is_self_contained_and_escapes_the_data():
    evil = "</script><script>alert(1)</script><!--"
    res = {"detection": aggregate([{"offset": 0, "labels": [{"label": evil, "score": 0.9}],
                                    "result": {"detections": [{"index": 0, "class": evil, "score": 0.9,
                                                               "pts": [[1, 2], [3, 2], [3, 4], [1, 4]]}]}}])}
    page = report.render(res, title="clip <1> & co")
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<script>alert" not in page and "<!--" not in page
    assert not re.search(r"https?://", page), "no external fetch, no CDN"
    assert not re.search(r"<link|@import|\burl\(", page)
    assert "clip &lt;1&gt; &amp; co" in page
    data = _page_json(page)
    assert data["ops"][0]["labels"][0][0] == evil  # the data survives the escaping intact


def test_job_record_input_and_suggestions_added_when_missing():
    seed = {"pulp": aggregate([{"offset": 0, "labels": [{"label": "0", "score": 0.95}],
                                "result": {"label": 0, "score": 0.95, "review": False}}])}
    job = {"id": "j1", "vid": "clip-9", "status": "FINISHED", "request": {
        "data": {"uri": "file:///x.mp4"}, "params": {"vframe": {"ss": 0, "t": 30}},
        "ops": [{"op": "pulp", "params": {"other": {"suggestion": {"block": {"0": None}}}}}]},
        "result": seed}
    result, info = report.split_input(job)
    assert info["vid"] == "clip-9" and report.source_of(info) == "file:///x.mp4"
    assert result["pulp"]["suggestion"] == verdict.REVIEW  # the request's policy (porn not blocked) applied
    assert "suggestion" not in seed["pulp"]  # the input is left alone
    data = _page_json(report.render(job))
    assert data["title"] == "clip-9" and data["overall"] == "review" and data["duration"] == 30000
    with pytest.raises(ValueError):
        report.split_input({"error": "cannot find the video"})


def test_thumbnail_keeps_aspect():
    frame = av.VideoFrame.from_ndarray(np.zeros((480, 640, 3), np.uint8), format="rgb24")
    t = report.thumbnail(frame)
    img = _decode_data_uri(t.uri)
    assert img.shape[:2] == (120, 160) and (t.width, t.height) == (640, 480)


def test_cli_analyze_report_and_report_command(vids, tmp_path: Path):
    """``argus analyze … --report`` and ``argus report <result.json> -o``; a bad source is a documented error."""
    import subprocess
    import sys

    video = vids["photos"]
    out_html, out_json, again = tmp_path / "a.html", tmp_path / "a.json", tmp_path / "b.html"
    cmd = [sys.executable, "-m", "argus_http.cli"]
    p = subprocess.run(cmd + ["analyze", str(video), "--op", "pulp", "--mode", "0", "--interval", "3",
                              "--decoders", "1", "--workers", "1", "--report", str(out_html)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out_json.write_text(p.stdout)
    result = json.loads(p.stdout)
    assert set(result) == {"pulp"} and "suggestion" in result["pulp"]
    assert result["pulp"]["suggestion"] in ("pass", "review", "block")
    data = _page_json(out_html.read_text())
    offsets = {c["offset"] for s in result["pulp"]["segments"] for c in s["cuts"]}
    assert set(map(int, data["thumbs"])) == offsets and data["title"] == video.name

    p = subprocess.run(cmd + ["report", str(out_json), "-o", str(again), "--video", str(video)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert _page_json(again.read_text())["thumbs"] == data["thumbs"]

    p = subprocess.run(cmd + ["report", "no-such-job", "-o", str(tmp_path / "c.html"),
                              "--data-dir", str(tmp_path / "nodata")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and json.loads(p.stdout)["error"] == "invalid parameters"
    assert "Traceback" not in p.stderr
    p = subprocess.run(cmd + ["analyze", str(video), "--op", "pulp", "--params",
                              '{"pulp": {"other": {"suggestion": {"block": {"0": 3}}}}}'],
                       capture_output=True, text=True, timeout=60)
    out = json.loads(p.stdout)
    assert p.returncode == 2 and out["error"] == "invalid parameters" and set(out) <= {"error", "detail"}


def _abstract(duration_ms: int = 20000) -> dict:
    """A ``GET /v1/videoAbstract`` body in the CONTRACT §12 shape (what ``Engine.abstract`` returns)."""
    items = [{"contentId": "t1_0_0", "level": 0, "startTimeInMS": 0, "endTimeInMS": duration_ms,
              "clipAbstract": "A programme of 20 s."},
             {"contentId": "t1_2_0", "level": 2, "startTimeInMS": 0, "endTimeInMS": 12000,
              "clipAbstract": "Two people at a table."},
             {"contentId": "t1_2_1", "level": 2, "startTimeInMS": 12000, "endTimeInMS": duration_ms,
              "clipAbstract": "A street <b>at night</b>."},
             {"contentId": "t1_3_1", "level": 3, "startTimeInMS": 5000, "endTimeInMS": 12000,
              "clipAbstract": "A close-up.", "keyframeInMS": 7000, "transition": "cut", "confidence": 0.9},
             {"contentId": "t1_3_0", "level": 3, "startTimeInMS": 0, "endTimeInMS": 5000,
              "clipAbstract": "A table.", "keyframeInMS": 2400}]
    return {"taskId": "t1", "source": "file:///x.mp4", "status": "FINISHED", "percent": 100,
            "durationInSecond": duration_ms / 1000, "clipResults": items}


def test_abstract_levels_become_lanes_coarsest_first():
    data = _page_json(report.render(_abstract()))
    assert [o["name"] for o in data["ops"]] == ["programme", "scenes", "shots"]  # only the levels present
    assert all(o["kind"] == "abstract" for o in data["ops"]) and data["duration"] == 20000
    shots = data["ops"][2]["segs"]
    assert [(s["b"], s["e"], s["id"]) for s in shots] == [(0, 5000, "t1_3_0"), (5000, 12000, "t1_3_1")]
    assert [s["cuts"][0]["o"] for s in shots] == [2400, 7000]  # keyframeInMS
    assert data["ops"][1]["segs"][0]["cuts"][0]["o"] == 6000  # no keyframe: the middle
    assert shots[1]["t"] == "A close-up." and shots[1]["cuts"][0]["r"]["transition"] == "cut"
    assert data["title"] == "t1"


def test_abstract_joined_to_a_result_keeps_the_op_lanes_below(vids):
    res = _result([1000, 3000])
    page = report.build(res, source=str(vids["photos"]), abstract=_abstract())
    data = _page_json(page)
    assert [o["name"] for o in data["ops"]] == ["programme", "scenes", "shots", "pulp"]
    # keyframes get thumbnails (grabbed from the source) as well as the cuts
    assert {"2400", "7000", "1000", "3000"} <= set(data["thumbs"])
    assert "<b>at night" not in page  # texts are data, escaped like the rest


def test_cli_report_takes_an_abstract(vids, tmp_path: Path):
    (tmp_path / "a.json").write_text(json.dumps(_abstract()), encoding="utf-8")
    (tmp_path / "r.json").write_text(json.dumps(_result([1000])), encoding="utf-8")
    from argus_http.cli import main

    assert main(["report", str(tmp_path / "r.json"), "--abstract", str(tmp_path / "a.json"), "--thumbs", "0",
                 "-o", str(tmp_path / "out.html")]) == 0
    names = [o["name"] for o in _page_json((tmp_path / "out.html").read_text(encoding="utf-8"))["ops"]]
    assert names == ["programme", "scenes", "shots", "pulp"]
    assert main(["report", str(tmp_path / "r.json"), "--abstract", str(tmp_path / "r.json"),
                 "-o", str(tmp_path / "bad.html")]) == 2  # a result is not an abstract
