"""Table tests of the pure abstract logic (issue 11): shot detector on constructed arrays, scenes, clips, text."""

from __future__ import annotations

import numpy as np
import pytest

from argus_core.abstract.clips import SceneEvidence, depths, programme, segment_clips
from argus_core.abstract.scenes import ShotFeatures, group_scenes
from argus_core.abstract.shots import Boundary, ShotDetector, is_colour_bars, refine_cut, shots_from, smpte
from argus_core.abstract.text import Evidence, TemplateWriter, grounded, write_text


def _noise(seed: int, base: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(base, 40, (36, 64, 3)), 0, 255).astype(np.uint8)
    return img


def _run(frames, step=100):
    det = ShotDetector(step)
    out = []
    for k, f in enumerate(frames):
        out += det.feed(k * step, f)
    return out + det.finish(), det


def test_cut_flash_and_black_cue():
    a, b = _noise(1, 60), _noise(2, 190)
    flash = np.clip(a.astype(int) + 150, 0, 255).astype(np.uint8)
    black = np.zeros_like(a)
    frames = [a] * 30 + [flash] + [a] * 30 + [b] * 30 + [black] * 5 + [b] * 30
    out, det = _run(frames)
    cuts = [x for x in out if x.type == "cut"]
    assert [x.time_ms for x in cuts][:1] == [6100]            # the cut, not the flash at 3000
    assert all(x.time_ms != 3000 for x in out)
    assert [c.type for c in det.cues] == ["black"] and det.cues[0].start_ms == 9100


def test_dissolve_is_typed():
    a, b = _noise(3, 50), _noise(4, 200)
    mix = [(a * (1 - t) + b * t).astype(np.uint8) for t in np.linspace(0.1, 0.9, 8)]
    out, _ = _run([a] * 30 + mix + [b] * 30)
    assert [x.type for x in out] == ["dissolve"]


def test_refine_cut_finds_the_frame():
    a, b = _noise(5, 60), _noise(6, 190)
    b0 = Boundary("cut", 1000, 900, 1000, 0.9, (900, 1000))
    frames = [(900, a), (940, a), (980, b), (1000, b)]
    assert refine_cut(b0, frames).time_ms == 980


def test_colour_bars():
    cols = np.array([[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0],
                     [0, 0, 192]], np.uint8)
    bars = np.repeat(np.repeat(cols[None], 36, axis=0), 9, axis=1)[:, :64]
    assert is_colour_bars(bars) and not is_colour_bars(_noise(7, 120))


@pytest.mark.parametrize("ms,fps,tc", [(0, 25, "00:00:00:00"), (4129, 23.976, "00:00:04:03"),
                                       (3_723_040, 25, "01:02:03:01")])
def test_smpte(ms, fps, tc):
    assert smpte(ms, fps) == tc


def test_shots_from_drops_edge_slivers():
    bs = [Boundary("cut", 83, 83, 83, 1.0), Boundary("cut", 4129, 4129, 4129, 0.7)]
    shots = shots_from(bs, 11261, 1000 / 23.976)
    assert [(s.start_ms, s.end_ms, s.type) for s in shots] == [(0, 4129, "start"), (4129, 11261, "cut")]
    assert shots[1].start_frame == 99


def _h(*vals):
    v = np.zeros(48)
    for i in vals:
        v[i] = 1.0
    return (v / v.sum() * 3).tolist()


def test_scenes_dialogue_and_change_of_place():
    A, B, C = _h(1, 17, 33), _h(2, 18, 34), _h(9, 25, 41)
    shots = [ShotFeatures(i * 3000, (i + 1) * 3000, h) for i, h in enumerate([A, B, A, B, C, C])]
    scenes = group_scenes(shots)
    assert [(s.first_shot, s.last_shot) for s in scenes] == [(0, 3), (4, 5)]


def test_scenes_time_constraint():
    A, B = _h(1, 17, 33), _h(2, 18, 34)
    shots = [ShotFeatures(0, 5000, A), ShotFeatures(5000, 100_000, B), ShotFeatures(100_000, 105_000, A)]
    assert len(group_scenes(shots, window_ms=30_000)) == 3


def test_clips_split_on_topic_change_and_respect_min():
    sport = [SceneEvidence(i * 20_000, (i + 1) * 20_000, ["sports ball", "person", "field"]) for i in range(4)]
    news = [SceneEvidence(80_000 + i * 20_000, 100_000 + i * 20_000, ["tv", "suit", "desk"]) for i in range(4)]
    clips = segment_clips(sport + news)
    assert [(c.first_scene, c.last_scene) for c in clips] == [(0, 3), (4, 7)]
    assert len(segment_clips((sport + news)[:3])) == 1          # 60 s: no side could reach 30 s twice
    assert programme(160_000).end_ms == 160_000


def test_clips_max_length():
    same = [SceneEvidence(i * 60_000, (i + 1) * 60_000, ["tv"]) for i in range(12)]
    assert all(c.end_ms - c.start_ms <= 300_000 for c in segment_clips(same))


def test_depths():
    assert depths([0.9, 0.2, 0.9]) == pytest.approx([0.0, 1.4, 0.0])


EVS = [Evidence(12000, {"person": 30, "dining table": 12, "wine glass": 5}, ["restaurant"], 2, [], [], 4),
       Evidence(200000, {"car": 40, "bicycle": 10}, ["cab"], 0, ["张三"], ["TAXI"], 12), Evidence(4000)]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_template_is_grounded_and_varies(lang):
    texts = [TemplateWriter().write(e, lang) for e in EVS]
    assert len(set(texts)) == 3 and all(grounded(t, e, lang) for t, e in zip(texts, EVS))
    assert ("餐桌" in texts[0]) == (lang == "zh") and ("dining table" in texts[0]) == (lang == "en")
    assert "张三" in texts[1] and "TAXI" in texts[1]
    assert "person" not in TemplateWriter().write(EVS[2], lang)


class _Writer:
    def __init__(self, text):
        self.text = text

    def write(self, ev, language="zh"):
        if self.text is None:
            raise TimeoutError("endpoint down")
        return self.text


@pytest.mark.parametrize("text,kept", [("画面中出现了餐桌、酒杯。", True), ("画面中出现了一只猫。", False),
                                       ("画面中有7位人物。", False), (None, False)])
def test_operator_writer_grounding(text, kept):
    out = write_text(EVS[0], "zh", _Writer(text))
    assert (out == text) is kept
    assert grounded(out, EVS[0], "zh")


def test_english_grounding_rejects_unseen_word():
    assert grounded("The clip shows dining table and wine glass.", EVS[0], "en")
    assert not grounded("The clip shows a dog.", EVS[0], "en")
