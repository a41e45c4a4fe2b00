"""image_label, detection and the terror ops on real photos with the real models, and through the Engine.

Photos are scikit-image's bundled ones. Frames are rendered the way the decoder renders them (swscale,
bilinear, per FrameSpec), optionally after stretching the photo to a video frame size first.
"""

from __future__ import annotations

import numpy as np
import pytest

from argus_core.aggregate import LABEL_FLOOR
from av import VideoFrame
from av.video.reformatter import Interpolation

from argus_core import Engine
from argus_core.post.boxes import iou_one_to_many
from argus_core.media.renditions import Frame
from argus_core.post.scores import class_indices, softmax, top_k
from argus_core.ops import create_op
from argus_core.ops import terror as terror_mod
from argus_core.ops.image_label import FrameMemo, memo_for
from argus_core.request import OpParams

VISION_OPS = ("image_label", "detection", "terror_detect", "terror", "terror_classify")


def photo(name: str) -> np.ndarray:
    from skimage import data

    if name == "camera":
        return np.stack([data.camera()] * 3, -1)
    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


PHOTOS = ("astronaut", "chelsea", "coffee", "camera", "motorcycle", "rocket")

# Where the objects are, annotated by hand on the native photos (x1, y1, x2, y2 in pixels).
WHERE = {
    "astronaut": ("person", (15, 15, 360, 512)),  # the astronaut, not the helmet on the right
    "coffee": ("cup", (170, 15, 410, 305)),  # the cup with its handle, not the saucer
    "camera": ("person", (0, 65, 330, 512)),  # the cameraman on the left half
    "motorcycle": ("motorcycle", (95, 95, 690, 450)),
}


def resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """RGB resize as the decoder does it (swscale bilinear)."""
    f = VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
    return f.reformat(w, h, format="rgb24", interpolation=Interpolation.BILINEAR).to_ndarray()


@pytest.fixture(scope="module")
def ops():
    # detection_centernet: CenterNet beside NanoDet, so the detection tests can ask for either
    out = {name: create_op(name, options={"detection_centernet": True}) for name in VISION_OPS}
    for op in out.values():
        op.load()
    return out


@pytest.fixture(scope="module")
def specs(ops):
    return {s for op in ops.values() for s in op.specs()}


@pytest.fixture(scope="module")
def frame_of(specs):
    def make(img: np.ndarray, size: tuple[int, int] | None = None, offset: int = 0) -> Frame:
        if size is not None:  # a video frame of that size showing the photo stretched
            img = resize(img, *size)
        h, w = img.shape[:2]
        return Frame(offset, w, h, {s: resize(img, *s.size_for(w, h)) for s in specs})

    return make


def run(op, frames, **other):
    return op.infer(frames, [OpParams(other=other)] * len(frames))


# -- imagenet helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "probs, k, threshold, expected",
    [
        ([0.1, 0.6, 0.3], 5, 0.1, [(1, "b", 0.6), (2, "c", 0.3), (0, "a", 0.1)]),  # >= threshold kept
        ([0.1, 0.6, 0.3], 1, 0.1, [(1, "b", 0.6)]),
        ([0.1, 0.6, 0.3], 5, 0.7, []),
        ([0.3, 0.3, 0.4], 2, 0.0, [(2, "c", 0.4), (0, "a", 0.3)]),  # tie: lower index first
        ([0.5, 0.2, 0.3], 0, 0.0, []),
    ],
)
def test_top_k_table(probs, k, threshold, expected):
    assert top_k(np.array(probs), ["a", "b", "c"], k, threshold) == expected


def test_top_k_reports_a_duplicated_name_once():
    # ImageNet has two "crane"s: report the name once, with the larger probability
    got = top_k(np.array([0.2, 0.5, 0.3]), ["crane", "crane", "dog"], 5, 0.1)
    assert got == [(1, "crane", 0.5), (2, "dog", 0.3)]


def test_softmax_and_class_lookup():
    p = softmax(np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]]))
    np.testing.assert_allclose(p, [[0.25, 0.75], [0.5, 0.5]])
    assert class_indices(["a", "b", "a"], ["a", "b"]) == {"a": 0, "b": 1}
    with pytest.raises(KeyError, match="gun"):
        class_indices(["a"], ["a", "gun"])


def test_frame_memo_computes_each_picture_once():
    memo, calls = FrameMemo(capacity=4), []

    def compute(batch):
        calls.append(len(batch))
        return [float(b.sum()) for b in batch]

    a, b = np.zeros((2, 2, 3), np.uint8), np.ones((2, 2, 3), np.uint8)
    assert memo.rows(np.stack([a, b, a]), compute) == [0.0, 12.0, 0.0]
    assert calls == [2]  # the duplicate in the batch was computed once
    assert memo.rows(np.stack([b]), compute) == [12.0] and calls == [2]
    c = b.copy()
    c[0, 0, 0] = 2  # one pixel differs: a different picture
    assert memo.rows(np.stack([c]), compute) == [13.0] and calls == [2, 1]


# -- image_label ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, accepted, min_score",
    [
        ("chelsea", {"Egyptian cat", "tabby", "tiger cat"}, 0.5),
        ("coffee", {"espresso"}, 0.9),
        ("camera", {"tripod"}, 0.9),
        ("motorcycle", {"moped", "motor scooter"}, 0.4),
    ],
)
def test_image_label_tops(ops, frame_of, name, accepted, min_score):
    for size in (None, (640, 360)):  # the photo itself, and stretched into a 16:9 video frame
        out = run(ops["image_label"], [frame_of(photo(name), size)])[0]
        conf = out.result["confidences"]
        assert conf[0]["class"] in accepted and conf[0]["score"] >= min_score, (size, conf)
        scores = [c["score"] for c in conf]
        assert scores == sorted(scores, reverse=True) and len(conf) <= 5 and min(scores) >= 0.1
        # labels: the confidences above the op's default score floor (issue 9: stable segments)
        floor = LABEL_FLOOR["image_label"]
        assert [(l.label, l.score) for l in out.labels] == [(c["class"], c["score"]) for c in conf
                                                            if c["score"] >= floor]


def test_image_label_params(ops, frame_of):
    f = [frame_of(photo("chelsea"))]
    op = ops["image_label"]
    assert len(run(op, f)[0].result["confidences"]) == 2  # Egyptian cat 0.79, tiger cat 0.12
    assert [c["class"] for c in run(op, f, topk=1)[0].result["confidences"]] == ["Egyptian cat"]
    assert run(op, f, threshold=0.95)[0].result == {"confidences": []}
    assert run(op, f, threshold=0.95)[0].labels == []
    assert len(run(op, f, threshold=0.0)[0].result["confidences"]) == 5
    # malformed values fall back to the defaults instead of failing the batch
    assert run(op, f, topk="x", threshold=True)[0].result == run(op, f)[0].result


# -- detection --------------------------------------------------------------------------------------------


def best_of(dets, cls):
    found = [d for d in dets if d["class"] == cls]
    assert found, f"no {cls} in {dets}"
    return max(found, key=lambda d: d["score"])


def box_of(d):
    (x1, y1), _, (x2, y2), _ = d["pts"]
    return np.array([x1, y1, x2, y2], float)


# Where each detector misses the photo's object (score below 0.35 or IoU below 0.5), measured (models/EVAL.md,
# "CenterNet or NanoDet"): letterboxed NanoDet-m scores the close-up cup 0.29-0.34 or boxes the saucer too;
# letterboxed CenterNet finds the native and 16:9 cup (0.57, 0.54) but scores the portrait frames low (a 300x500
# frame fills only 307 of its 512 columns). Strict: a case that starts passing must be moved out of here.
MISSES = {
    "nanodet": {("coffee", None), ("coffee", (300, 500))},
    "centernet": {("astronaut", (300, 500)), ("coffee", (300, 500)), ("motorcycle", (300, 500))},
}


@pytest.mark.parametrize("model", ["nanodet", "centernet"])
@pytest.mark.parametrize("name", sorted(WHERE))
@pytest.mark.parametrize("size", [None, (640, 360), (300, 500)], ids=["native", "640x360", "300x500"])
def test_detection_finds_objects_where_they_are(ops, frame_of, name, size, model, request):
    if (name, size) in MISSES[model]:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"issue 9: {model} misses it (MISSES)"))
    img = photo(name)
    cls, ref = WHERE[name]
    frame = frame_of(img, size)
    sx, sy = frame.src_w / img.shape[1], frame.src_h / img.shape[0]
    expected = np.array(ref, float) * [sx, sy, sx, sy]  # where the object is in this frame
    out = run(ops["detection"], [frame], model=model)[0]
    dets = out.result["detections"]
    d = best_of(dets, cls)
    assert d["score"] >= 0.35
    assert iou_one_to_many(expected, box_of(d)[None])[0] >= 0.5, (d, expected)
    assert d["index"] == ops["detection"].manifests[model].labels.index(cls)
    (x1, y1), (x2, y1b), (x2b, y2), (x1b, y2b) = d["pts"]
    assert (x1, x2, y1, y2) == (x1b, x2b, y1b, y2b) and 0 <= x1 < x2 <= frame.src_w and 0 <= y1 < y2 <= frame.src_h
    # labels: the classes whose best box reaches the op's label floor (issue 9: stable segments)
    labels = {l.label: l.score for l in out.labels}
    best = max(x["score"] for x in dets if x["class"] == cls)
    assert labels.get(cls) == (best if best >= LABEL_FLOOR["detection"] else None)
    assert [x["score"] for x in dets] == sorted((x["score"] for x in dets), reverse=True)


@pytest.mark.parametrize("name", ["motorcycle", "astronaut", "camera"])
def test_detection_mirrors_with_the_picture(ops, frame_of, name):
    # The GFL decode (cell centres with +0.5, side order l,t,r,b) is right only if a mirrored photo gives the
    # mirrored box: measured 3.5–4.5 px apart on these photos; a centre offset of 0 instead of 0.5 puts
    # them 27–54 px (5–7 % of the width) apart. (The cup is left out: its handle makes it asymmetric.)
    img = photo(name)
    cls, w = WHERE[name][0], img.shape[1]
    a = box_of(best_of(run(ops["detection"], [frame_of(img)])[0].result["detections"], cls))
    b = box_of(best_of(run(ops["detection"], [frame_of(img[:, ::-1])])[0].result["detections"], cls))
    shift = ((w - b[2]) - a[0] + (w - b[0]) - a[2]) / 2
    assert abs(shift) <= 0.02 * w, (a, b)


def test_detection_threshold_and_empty_photo(ops, frame_of):
    f = [frame_of(photo("camera"))]
    classes = {d["class"] for d in run(ops["detection"], f)[0].result["detections"]}
    assert "person" in classes
    strict = run(ops["detection"], f, threshold=0.8)[0]
    assert [d["class"] for d in strict.result["detections"]] == ["person"]  # person 0.88 only
    assert run(ops["detection"], [frame_of(photo("rocket"))])[0].result == {"detections": []}


def test_batch_equals_single_frames(ops, frame_of):
    frames = [frame_of(photo(n), (640, 360), offset=i) for i, n in enumerate(PHOTOS)]
    for name in ("image_label", "detection"):
        batch = run(ops[name], frames)
        singles = [run(ops[name], [f])[0] for f in frames]
        assert [o.result for o in batch] == [o.result for o in singles]


def test_detection_model_choice(ops, frame_of, tmp_path):
    # params.other.model picks NanoDet (the default) or CenterNet per request; the decoder renders only the
    # chosen model's input, and a batch mixing both gives what each frame gets alone
    from argus_core.errors import InvalidRequest
    from argus_core.ops.image_label import spec_of

    op = ops["detection"]
    nano, cn = (spec_of(op.manifests[m]) for m in ("nanodet", "centernet"))
    assert nano != cn and set(op.specs()) == {nano, cn}
    assert op.specs_for(OpParams(other={"model": "centernet"})) == (cn,)
    assert op.specs_for(OpParams()) == op.specs_for(OpParams(other={"model": "nanodet"})) == (nano,)
    frames = [frame_of(photo(n), (640, 360), offset=i) for i, n in enumerate(("camera", "coffee", "astronaut"))]
    models = ["centernet", "nanodet", "centernet"]
    mixed = op.infer(frames, [OpParams(other={"model": m}) for m in models])
    alone = [op.infer([f], [OpParams(other={"model": m})])[0] for f, m in zip(frames, models)]
    assert [o.result for o in mixed] == [o.result for o in alone]
    assert mixed[1].result == run(op, [frames[1]])[0].result  # nanodet is the default
    assert alone[0].result != run(op, [frames[0]])[0].result  # the two models do differ
    assert "person" in {d["class"] for d in mixed[0].result["detections"]}
    with pytest.raises(InvalidRequest, match="params.other.model"):
        op.check_params(OpParams(other={"model": "yolo"}))
    # the operator's default (which turns CenterNet on)
    assert create_op("detection", options={"detection_model": "centernet"}).specs_for(OpParams()) == (cn,)
    # CenterNet not turned on, or its folder missing: NanoDet alone, model "centernet" refused at submit
    (tmp_path / "nanodet").symlink_to(op.models_dir / "nanodet")
    for bare in (create_op("detection"), create_op("detection", models_dir=tmp_path,
                                                   options={"detection_centernet": True})):
        assert bare.specs() == (nano,) and "centernet" not in bare.manifests
        bare.check_params(OpParams(other={"model": "nanodet"}))
        with pytest.raises(InvalidRequest, match="centernet"):
            bare.check_params(OpParams(other={"model": "centernet"}))


# -- terror ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, (640, 360)], ids=["native", "640x360"])
def test_benign_photos_are_never_terror(ops, frame_of, size):
    frames = [frame_of(photo(n), size) for n in PHOTOS]
    for name, out in zip(PHOTOS, run(ops["terror"], frames, detail=True)):
        r = out.result
        assert r["label"] == 0 and r["class"] == "normal", (name, r)
        assert [l.label for l in out.labels] == ["0"]
    assert all(o.result["confidences"] == [] and o.labels == [] for o in run(ops["terror_classify"], frames))
    assert all(o.result["detections"] == [] and o.labels == [] for o in run(ops["terror_detect"], frames))


def test_terror_says_what_it_cannot_see(ops, frame_of):
    f = [frame_of(photo("coffee"))]
    never = {"bloodiness", "self_burning", "beheaded", "march_crowed", "fight_police", "fight_person",
             "illegal_flag", "anime_bloodiness", "anime_knives", "anime_guns", "special_characters"}
    for name in ("terror", "terror_classify"):
        op = ops[name]
        assert set(run(op, f)[0].result["unsupported"]) == never
        assert all(c in op.description for c in never)
    assert "class" not in run(ops["terror"], f)[0].result  # only with detail
    detect = ops["terror_detect"]
    supported = run(detect, f)[0].result["supported"]
    assert supported[0] == "knife" and {"assault rifle", "revolver", "tank", "military uniform"} <= set(supported)
    assert "pts: []" in detect.description and "no box" in detect.description


def fake_probs(classes: dict[str, float], labels: list[str]) -> np.ndarray:
    """A probability row with the given classes and the rest spread evenly (sums to 1)."""
    row = np.full(len(labels), (1.0 - sum(classes.values())) / (len(labels) - len(classes)))
    for name, p in classes.items():
        row[labels.index(name)] = p
    return row


def test_weapon_evidence_flows_to_every_terror_op(ops, frame_of, monkeypatch):
    # No weapon photo exists offline: feed the ops a classifier output with gun classes (the detector still
    # runs for real) and check the whole path from ImageNet class to result and label.
    labels = ops["terror"].manifests["mobilenetv2"].labels
    row = fake_probs({"assault rifle": 0.55, "rifle": 0.25, "military uniform": 0.2}, labels)
    monkeypatch.setattr(terror_mod, "classify", lambda model, frames: np.stack([row] * len(frames)))
    f = [frame_of(photo("chelsea"), (640, 360))]  # no knife-like box above 0.05 on the cat

    t = run(ops["terror"], f, detail=True)[0]
    assert t.result["label"] == 1 and t.result["class"] == "guns"
    guns = 0.55 + 0.25 + row[labels.index("revolver")]  # P(assault rifle or rifle or revolver) ≥ IMAGENET_ALONE
    assert t.result["score"] == pytest.approx(guns, abs=1e-6)
    assert [(l.label, l.score) for l in t.labels] == [("1", t.result["score"])]
    ev = {e["class"]: e for e in t.result["evidence"]}
    assert set(ev) == {"assault rifle", "rifle", "military uniform"} and ev["rifle"]["pts"] == []

    c = run(ops["terror_classify"], f)[0].result["confidences"]
    assert [(x["class"], x["index"]) for x in c] == [("guns", 8)]  # uniform 0.2 < 0.5
    # a whole-image uniform at 0.2 with no person box to confirm it is held back, whatever the threshold
    c = run(ops["terror_classify"], f, threshold=0.15)[0].result["confidences"]
    assert [x["class"] for x in c] == ["guns"], run(ops["terror"], f, detail=True)[0].result["confirmed_by"]

    d = run(ops["terror_detect"], f)[0]
    assert [(x["class"], x["pts"]) for x in d.result["detections"]] == [("assault rifle", [])]
    assert d.result["detections"][0]["index"] == d.result["supported"].index("assault rifle")
    assert [l.label for l in d.labels] == ["assault rifle"]
    # a threshold of 0 is raised to 0.05: the negligible gun-class probabilities (~1e-4) stay out
    d0 = run(ops["terror_detect"], f, threshold=0)[0].result["detections"]
    assert [x["class"] for x in d0] == ["assault rifle", "rifle", "military uniform"]
    # below the threshold: "0" with the complement as its score, flagged for review when close
    t = run(ops["terror"], f, threshold=0.9)[0].result
    assert (t["label"], t["review"]) == (0, True) and t["score"] == pytest.approx(1 - guns, abs=1e-6)


E = terror_mod.Evidence


@pytest.mark.parametrize(
    "evidence, threshold, expected",
    [
        ([], 0.5, (0, "normal", 1.0, False)),
        ([E("rifle", "guns", 0.3, "mobilenetv2"), E("revolver", "guns", 0.25, "mobilenetv2"),
          E("person", "", 0.6, "nanodet-context")], 0.5,
         (1, "guns", 0.55, True)),  # one softmax: the probabilities of a group add up; a person confirms
        ([E("rifle", "guns", 0.3, "mobilenetv2"), E("revolver", "guns", 0.25, "mobilenetv2")], 0.5,
         (0, "normal", 0.45, True)),  # whole-image classes alone below IMAGENET_ALONE: held back, for review
        ([E("half track", "heavy_weapons", 0.3, "mobilenetv2"), E("cannon", "heavy_weapons", 0.21, "mobilenetv2"),
          E("bicycle", "", 0.8, "nanodet-context")], 0.5,
         (0, "normal", 0.49, True)),  # the parked bicycle of bikes@9: a bicycle box confirms nothing
        ([E("tank", "heavy_weapons", 0.55, "mobilenetv2"), E("truck", "", 0.5, "nanodet-context")], 0.5,
         (1, "heavy_weapons", 0.55, True)),  # COCO sees the tank as a truck
        ([E("tank", "heavy_weapons", 0.8, "mobilenetv2")], 0.5, (1, "heavy_weapons", 0.8, False)),
        ([E("knife", "knives", 0.45, "nanodet", [[0, 0]] * 4), E("knife", "knives", 0.4, "nanodet")], 0.5,
         (0, "normal", 0.55, True)),  # boxes do not add up: the best one counts
        ([E("knife", "knives", 0.9, "nanodet"), E("cleaver", "knives", 0.2, "mobilenetv2")], 0.5,
         (1, "knives", 0.9, False)),
        ([E("tank", "heavy_weapons", 0.6, "mobilenetv2"), E("knife", "knives", 0.6, "nanodet"),
          E("truck", "", 0.5, "nanodet-context")], 0.5,
         (1, "knives", 0.6, True)),  # a tie goes to the earlier class of the original list
        ([E("military uniform", "special_clothing", 0.2, "mobilenetv2")], 0.5, (0, "normal", 0.8, False)),
        ([E("keyword:x", "special_characters", 0.97, "ocr")], 0.5, (1, "special_characters", 0.97, False)),
    ],
)
def test_terror_decision_table(evidence, threshold, expected):
    label, cls, score, _strongest, review = terror_mod.decide(evidence, threshold)
    assert (label, cls, round(score, 6), review) == expected


def test_text_evidence_hook():
    kw = terror_mod.keyword_lists(["Jihad", "ＡＢＣ"])  # full-width letters normalise (NFKC) to "abc"
    lines = [terror_mod.TextLine("JIHAD now", 0.9, [[1, 2]] * 4), terror_mod.TextLine("abc def", 0.8),
             terror_mod.TextLine("nothing here", 0.99), terror_mod.TextLine("مرحبا بالعالم", 0.7)]
    ev = terror_mod.text_evidence(lines, kw, scripts=["arabic"])
    assert [(e.cls, e.group, e.score) for e in ev] == [
        ("keyword:jihad", "special_characters", 0.9), ("keyword:abc", "special_characters", 0.8),
        ("script:arabic", "special_characters", 0.7)]
    assert ev[0].pts == [[1, 2]] * 4
    assert terror_mod.keyword_lists({"illegal_flag": ["x"]}) == {"illegal_flag": ["x"]}
    with pytest.raises(ValueError):
        terror_mod.keyword_lists({"not_a_class": ["x"]})
    with pytest.raises(ValueError):
        terror_mod.keyword_lists("jihad")


def test_text_evidence_from_ocr_keywords():
    # configured keywords are read by the ocr op's real model; a photo with the words drawn on it is
    # terror "1" special_characters, the same photo without them is "0" (CONTRACT §3: evidence only)
    pytest.importorskip("rapidocr")
    from skimage import data

    from .test_ocr import with_subtitle

    op = create_op("terror", options={"terror_keywords": ["attack"]})
    assert "special_characters" in op.supported_groups and "special_characters" not in op.unsupported
    op.load()
    img, _box = with_subtitle(data.coffee(), "Attack at dawn", 640, 360)
    plain, _ = with_subtitle(data.coffee(), "Coffee at dawn", 640, 360)
    specs = op.specs()
    frames = [Frame(0, 640, 360, {sp: resize(im, *sp.size_for(640, 360)) for sp in specs}) for im in (img, plain)]
    hit, miss = op.infer(frames, [OpParams(other={"detail": True})] * 2)
    assert hit.result["label"] == 1 and hit.result["class"] == "special_characters"
    assert miss.result["label"] == 0
    with pytest.raises(ValueError):
        create_op("terror", options={"terror_scripts": ["klingon"]})


def test_models_run_once_per_frame_across_ops(ops, frame_of):
    frames = [frame_of(photo(n), (320, 240)) for n in ("camera", "coffee")]
    memo = memo_for(ops["image_label"].model(), "probs")
    assert ops["image_label"].model() is ops["terror"].model("mobilenetv2")  # one shared session
    run(ops["image_label"], frames)
    misses = memo.misses
    run(ops["terror"], frames)
    run(ops["terror_classify"], frames)
    assert memo.misses == misses


# -- through the Engine ---------------------------------------------------------------------------------


PER_PHOTO_MS = 3000  # tests/conftest.py "photos": astronaut, chelsea, coffee, camera, rocket × 3 s
VIDEO_PHOTOS = ("astronaut", "chelsea", "coffee", "camera", "rocket")
ENGINE_OPS = ["image_label", "detection", "pulp", "terror", "terror_classify", "terror_detect"]


@pytest.fixture(scope="module")
def slideshow(vids):
    """One analysis of the photo slideshow with every vision op at once, sampled every 0.5 s."""
    # thresholds with a margin to every score seen on these photos, so compression noise cannot flip a label
    other = {"image_label": {"threshold": 0.4}, "detection": {"threshold": 0.45}}
    body = {"data": {"uri": str(vids["photos"])}, "params": {"vframe": {"mode": 0, "interval": 0.5}},
            "ops": [{"op": n, "params": {"other": other.get(n, {})}} for n in ENGINE_OPS]}
    with Engine(decoders=1, workers=1, ops=ENGINE_OPS) as engine:
        return engine.analyze(body, timeout=120)


def label_set(cut_labels) -> frozenset:
    return frozenset(l["label"] for l in cut_labels)


@pytest.mark.parametrize("op", ENGINE_OPS)
def test_segments_change_exactly_where_the_picture_changes(slideshow, op):
    segs = slideshow[op]["segments"]
    cuts = [(c["offset"], seg_i) for seg_i, s in enumerate(segs) for c in s["cuts"]]
    assert [o for o, _ in cuts] == list(range(0, 15000, 500))
    # a new segment starts exactly at the photo changes where the op's labels differ
    seg_labels = [label_set(s["labels"]) for s in segs]
    per_photo = [seg_labels[seg_i] for o, seg_i in cuts if o % PER_PHOTO_MS == 0]
    starts = [s["offset_begin"] for s in segs]
    expected = [0] + [k * PER_PHOTO_MS for k in range(1, len(VIDEO_PHOTOS)) if per_photo[k] != per_photo[k - 1]]
    assert starts == expected, (op, starts, per_photo)
    if op in ("image_label", "detection"):
        assert len(segs) >= 3  # these ops do tell the photos apart


def test_slideshow_labels_per_photo(slideshow):
    def labels_at(op, k):
        (seg,) = [s for s in slideshow[op]["segments"] if s["offset_begin"] <= k * PER_PHOTO_MS <= s["offset_end"]]
        return label_set(seg["labels"])

    assert [labels_at("image_label", k) for k in (1, 2, 3)] == [{"Egyptian cat"}, {"espresso"}, {"tripod"}]
    assert "person" in labels_at("detection", 0) and "person" in labels_at("detection", 3)
    # the close-up cup (photo 2) is below 0.3 since detection letterboxes (issue 9): not asserted here
    assert labels_at("detection", 4) == frozenset()
    assert {l["label"] for l in slideshow["pulp"]["labels"]} == {"2"}
    assert [l["label"] for l in slideshow["terror"]["labels"]] == ["0"]
    assert slideshow["terror_classify"]["labels"] == [] and slideshow["terror_detect"]["labels"] == []


def test_slideshow_boxes_in_video_pixels(slideshow):
    # the video is 640×360: the astronaut (512×512 photo) is squeezed horizontally
    sx, sy = 640 / 512, 360 / 512
    expected = np.array(WHERE["astronaut"][1], float) * [sx, sy, sx, sy]
    first = slideshow["detection"]["segments"][0]["cuts"]
    for c in first[: 6]:  # the astronaut's cuts (0 .. 2.5 s)
        d = best_of(c["result"]["detections"], "person")
        assert iou_one_to_many(expected, box_of(d)[None])[0] >= 0.5, d
        assert all(0 <= x <= 640 and 0 <= y <= 360 for x, y in d["pts"])
