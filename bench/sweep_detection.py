"""Person / car thresholds of ``detection`` swept on the footage of ``bench.eval_footage`` (models/EVAL.md,
"CenterNet or NanoDet").

    python -m bench.sweep_detection nanodet
    python -m bench.sweep_detection centernet
    ARGUS_MODELS_DIR=<a copy of models/ with centernet's resize "stretch"> python -m bench.sweep_detection centernet

The model runs once per clip at ``params.other.threshold`` 0.1; each threshold is then applied to the answers
and :func:`bench.eval_footage.score` gives the figures (person recall, false persons per person-free frame,
persons on vtest's static objects, car recall).
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from bench.eval_footage import CAR_CLASSES, CLIPS, load_labels, run, score

PERSON = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
CAR = (0.15, 0.2, 0.25, 0.3)


def keep_above(answers: dict[str, dict], person: float, car: float) -> dict[str, dict]:
    """The answers with person boxes below ``person`` and car/truck/bus boxes below ``car`` removed (the
    other classes are not scored)."""
    out = copy.deepcopy(answers)
    for clip in out.values():
        for seg in clip["detection"]["segments"]:
            for cut in seg["cuts"]:
                cut["result"]["detections"] = [
                    d for d in cut["result"]["detections"]
                    if (d["class"] == "person" and d["score"] >= person) or (d["class"] in CAR_CLASSES and d["score"] >= car)]
    return out


def main(argv: list[str] | None = None) -> int:
    model = (argv or sys.argv[1:] or ["nanodet"])[0]
    answers, took = run(CLIPS, ("detection",), extra={"detection": {"other": {"threshold": 0.1, "model": model}}},
                        options={"detection_centernet": True})
    labels = load_labels()
    print(f"{model}; seconds per clip: " + ", ".join(f"{k} {v:.1f}" for k, v in took.items()))
    for p in PERSON:
        d: dict[str, Any] = score(keep_above(answers, p, 1.1), labels)["detection"]
        print(f"person >= {p}: recall {d['person_recall']}, false per free frame {d['false_persons_per_free_frame']}, "
              f"vtest static per frame {d['vtest_static_persons_per_frame']}")
    for c in CAR:
        d = score(keep_above(answers, 1.1, c), labels)["detection"]
        print(f"car >= {c}: recall {d['car_recall']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
