"""The whole abstract in one pass (argus_core/abstract/run.py) on a short video built from real footage
(tests/abstract_media.py: truth by construction), with the real models; and its documented errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time

import pytest

from argus_core.abstract import run
from argus_core.abstract.evidence import dedup_lines, spread, thin_keep
from argus_core.abstract.text import grounded, write_text
from argus_core.errors import Cancelled
from argus_core.ops.image_label import classify
from tests import abstract_media as am
from tests.footage_frames import real_frames
from tests.data import DataUnavailable, footage_or_skip

SHORT = [am.Piece("bigbuckbunny", 0.0, 3.0), am.Piece("carphone_pristine", 0.0, 3.0, "cut"),
         am.Piece("vtest", 10.0, 3.0, "dissolve", 0.8)]


@pytest.fixture(scope="module")
def short():
    for name in ("bigbuckbunny", "carphone_pristine", "vtest"):
        footage_or_skip(name)
    try:
        return am.build(SHORT, [], "short")
    except DataUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def models():
    m = run.shared_models()
    if "image_label" not in m.ops or "detection" not in m.ops:
        pytest.skip(f"models unavailable: {m.unavailable}")
    return m


def test_end_to_end(short, models):
    opts = run.Options(layers=(0, 1, 2, 3))
    seen: list[run.Progress] = []
    a = run.analyse(str(short.path), opts, models=models, progress=seen.append)
    trace: list = []
    body = run.build_response(a, "task1", opts, trace=trace)
    items = body["clipResults"]
    assert {i["level"] for i in items} == {0, 1, 2, 3}
    for i in items:
        if "type" not in i:
            assert re.fullmatch(rf"task1_{i['level']}_\d+", i["contentId"]), i["contentId"]
    assert len({i["contentId"] for i in items}) == len(items)
    # shots: the cut on its exact frame, the dissolve found, nothing else
    shots = [i for i in items if i["level"] == 3 and "type" not in i]
    assert [s["transition"] for s in shots] == ["start", "cut", "dissolve"], shots
    assert abs(shots[1]["startTimeInMS"] - 3000) <= 1000 / am.FPS
    assert shots[1]["startFrame"] == round(shots[1]["startTimeInMS"] * am.FPS / 1000)
    assert shots[1]["startTimecode"] == "00:00:03:00"
    # every text is the template's over what the models reported, and grounded in it
    texts = {i["contentId"]: i["clipAbstract"] for i in items}
    for cid, ev in trace:
        assert texts[cid] == write_text(ev, "zh") and grounded(texts[cid], ev, "zh"), (cid, texts[cid], ev)
        # the Chinese text names the real ImageNet tags in Chinese: Latin letters only inside OCR quotes / names
        latin = re.sub(r"“[^”]*”", "", texts[cid])
        assert not re.search(r"[A-Za-z]", re.sub("|".join(map(re.escape, ev.names)) or "^$", "", latin)), texts[cid]
    assert any(ev.tags for _, ev in trace)
    ev = dict(trace)
    # carphone (a man talking in a car): the face detector sees him; the texts differ between shots
    assert ev[shots[1]["contentId"]].people >= 1, ev[shots[1]["contentId"]]
    assert len({s["clipAbstract"] for s in shots}) == 3
    assert items[0]["level"] == 0 and items[0]["endTimeInMS"] == a.duration_ms
    pct = [p.percent for p in seen]
    assert pct == sorted(pct) and pct[0] == 0 and pct[-1] >= 90
    assert seen[0].duration_ms == a.duration_ms
    en = run.build_response(a, "task1", run.Options(layers=(3,), language="en"))
    assert all(i["level"] == 3 for i in en["clipResults"])
    assert not re.search(r"[\u4e00-\u9fff]", " ".join(i["clipAbstract"] for i in en["clipResults"]))


def test_stop_ends_decoding(short, models):
    t0 = time.monotonic()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(Cancelled):
        run.analyse(str(short.path), run.Options(), models=models, stop=stop.is_set)
    assert time.monotonic() - t0 < 30   # generous: the point is that it raises Cancelled, not a result


def _ffmpeg(*args: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg CLI missing")
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=60)


def test_invalid_media(tmp_path):
    audio = tmp_path / "a.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=d=1", str(audio))
    with pytest.raises(run.InvalidMedia) as e:
        run.analyse(str(audio), run.Options(features=False))
    assert (e.value.code, e.value.message) == ("InvalidMedia", run.NO_VIDEO)
    tiny = tmp_path / "tiny.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=s=16x16:d=1", "-pix_fmt", "yuv420p", str(tiny))
    with pytest.raises(run.InvalidMedia) as e:
        run.analyse(str(tiny), run.Options(features=False))
    assert e.value.message == run.LIMIT_EXCEEDED
    ok = tmp_path / "ok.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x48:d=3", "-pix_fmt", "yuv420p", str(ok))
    with pytest.raises(run.InvalidMedia):
        run.analyse(str(ok), run.Options(features=False, max_duration_s=2.0))
    with pytest.raises(run.TimeOut) as e:
        run.analyse(str(ok), run.Options(features=False, time_limit_s=0.0))
    assert e.value.code == "TimeOut"
    with pytest.raises(run.InvalidMedia) as e:
        run.analyse(str(tmp_path / "missing.mp4"), run.Options(features=False))


@pytest.mark.parametrize("d, limit", [(60, 900), (179.9, 900), (180, 1800), (599, 1800), (600, 3600),
                                      (1800, 7200 + 900), (None, 900)])
def test_time_limits(d, limit):
    assert run.time_limit_s(d) == limit


@pytest.mark.parametrize("value, out", [(None, (0, 1, 2)), ([3, 0], (0, 3)), ("0,1,2,3", (0, 1, 2, 3))])
def test_parse_layers(value, out):
    assert run.parse_layers(value) == out


@pytest.mark.parametrize("bad", [[], [4], [True], ["x"], [1.5], "a", 3])
def test_parse_layers_rejects(bad):
    with pytest.raises(ValueError):
        run.parse_layers(bad)


def test_evidence_helpers():
    assert dedup_lines(["Hello World", "hello  world!", "Hello", "x", "新闻 联播", "新闻联播今天"]) == \
        ["Hello World", "新闻联播今天"]
    assert spread(list(range(10)), 3) == [1, 5, 8]
    assert spread([1, 2], 3) == [1, 2]
    offs = list(range(0, 3000, 100))          # 30 frames, cap 24, the last second kept whole
    keep = thin_keep(offs, 2900, 1000, 24)
    assert [offs[i] for i in keep][-10:] == offs[-10:] and len(keep) < 30
    assert thin_keep(offs[:5], 400, 1000, 24) == list(range(5))


def test_cli_shots_only(short, tmp_path, capsys):
    import json

    from argus_http.cli import main

    assert main(["abstract", str(short.path), "--layers", "0,3", "--lang", "en", "--shots-only",
                 "--progress", "off"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "FINISHED" and out["percent"] == 100 and out["durationInSecond"] == 8
    shots = [i for i in out["clipResults"] if i["level"] == 3 and "type" not in i]
    assert [s["transition"] for s in shots] == ["start", "cut", "dissolve"]
    assert all(i["contentId"].startswith(out["taskId"] + "_") for i in out["clipResults"])
    audio = tmp_path / "a.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=d=1", str(audio))
    assert main(["abstract", str(audio), "--progress", "off"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "InvalidMedia"
    assert main(["abstract", str(short.path), "--layers", "5", "--progress", "off"]) == 2


# -- what one shot costs (issue 11's ≤ 0.1× budget): which frames each model sees ----------------------------
def test_detectors_see_the_keyframe_and_tags_up_to_three_frames(short, models):
    """The classifier runs on up to 3 frames of a shot, the detectors (COCO, faces, OCR) on its keyframe only
    — the middle one of those, the offset build_response reports as ``keyframeInMS``."""
    opts = run.Options(layers=(3,))
    a = run.analyse(str(short.path), opts, models=models)
    body = run.build_response(a, "t", opts)
    shots = [i for i in body["clipResults"] if "type" not in i]
    assert len(a.spans) == len(shots) == 3
    for sp, item in zip(a.spans, shots):
        assert 2 <= len(sp.seen) <= 3 and all(s.tags for s in sp.seen), sp.seen
        key = sp.seen[len(sp.seen) // 2]
        others = [s for s in sp.seen if s is not key]
        assert all(not (s.objects or s.faces or s.persons or s.ocr or s.names) for s in others), others
        assert item["keyframeInMS"] == key.offset_ms
    # carphone (a face filling the frame): found on the keyframe
    assert a.spans[1].seen[len(a.spans[1].seen) // 2].faces >= 1


def test_shot_embedding_is_the_penultimate_layer(short, models):
    """Per shot the mean 1280-D MobileNetV2 embedding (the pooled vector before the classifier): the
    classifier's own weights applied to it give back the logits of the tags' probabilities."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    a = run.analyse(str(short.path), run.Options(layers=(3,)), models=models)
    embs = run.shot_embeddings(a)
    assert len(embs) == len(a.shots) and all(e is not None and len(e) == 1280 for e in embs)
    e = np.asarray(embs, np.float32)
    assert np.isfinite(e).all() and (e >= 0).all()   # after ReLU6 and the mean pool
    cos = (e @ e.T) / np.outer(np.linalg.norm(e, axis=1), np.linalg.norm(e, axis=1))
    assert cos[0, 1] < 0.95 and cos[1, 2] < 0.95, cos          # three different pieces of footage
    emb = models.embedder
    frames = [r.frame for r in real_frames([emb.spec], ("carphone_pristine", "tree"), interval=2.0)][:4]
    probs, feats = emb.run(frames)
    graph = onnx.load(str(emb.model.folder / emb.model.manifest.file))
    init = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    (gemm,) = [n for n in graph.graph.node if n.op_type == "Gemm"]
    casts = {n.output[0]: n.input[0] for n in graph.graph.node if n.op_type == "Cast"}  # fp16 storage + Cast
    w, b = (init[casts.get(x, x)].astype(np.float32) for x in gemm.input[1:3])
    logits = feats @ w.T + b
    back = np.exp(logits - logits.max(axis=1, keepdims=True))
    assert np.allclose(back / back.sum(axis=1, keepdims=True), probs, atol=1e-4)
    # and the tags are image_label's: the same probabilities as the op's classify
    assert np.allclose(probs, classify(emb.model, frames), atol=1e-5)


def test_models_beside_the_decoder_see_the_same(short, models):
    """The models' thread (overlap, the default) gives the very evidence of running them in the decode loop."""
    a = run.analyse(str(short.path), run.Options(layers=(3,)), models=models)
    b = run.analyse(str(short.path), run.Options(layers=(3,), overlap=False), models=models)
    assert [(s.start_ms, s.end_ms, s.seen) for s in a.spans] == [(s.start_ms, s.end_ms, s.seen) for s in b.spans]
    assert run.build_response(a, "t", run.Options(layers=(0, 1, 2, 3))) == \
        run.build_response(b, "t", run.Options(layers=(0, 1, 2, 3)))


def _caption(rgb, text: str, px: int):
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(rgb)
    d = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=px)
    w = d.textlength(text, font=font)
    d.text(((im.width - w) / 2, im.height - 2 * px), text, font=font, fill="white", stroke_width=2,
           stroke_fill="black")
    return np.asarray(im)


def test_ocr_gate_passes_a_caption_and_skips_a_textless_frame(models):
    """The 480-px DB gate in front of the 960-px OCR: a 30-px caption drawn on real 720p footage passes it
    (and the full OCR then reads it); the same textless frames of carphone do not (no OCR paid there)."""
    import cv2

    if "ocr" not in models.ops:
        pytest.skip(f"ocr unavailable: {models.unavailable}")
    frames = [r.frame for r in real_frames([run.OCR_GATE_SPEC], ("carphone_pristine",), interval=2.0)]
    plain = [cv2.resize(f.views[run.OCR_GATE_SPEC], (1280, 720), interpolation=cv2.INTER_CUBIC) for f in frames]
    small = lambda img: cv2.resize(img, (480, 270), interpolation=cv2.INTER_AREA)  # noqa: E731
    assert not any(models.text_likely(small(p)) for p in plain)
    captioned = [_caption(p, "THE RABBIT WAKES UP", 30) for p in plain]
    assert all(models.text_likely(small(c)) for c in captioned)
    from argus_core.media.renditions import Frame

    ocr = models.ops["ocr"]
    spec = ocr.specs()[0]
    view = cv2.resize(captioned[0], (960, 540), interpolation=cv2.INTER_AREA)
    texts = ocr.infer([Frame(0, 1280, 720, {spec: view})], [run.OpParams()])[0].result["texts"]
    assert "RABBIT" in " ".join(t["text"] for t in texts).upper(), texts
