"""Shots and scenes on videos built from real footage (tests/abstract_media.py: truth by construction),
against PySceneDetect's AdaptiveDetector as the oracle in the same run (issue 11)."""

from __future__ import annotations

import pytest

from argus_core.abstract import run
from argus_core.abstract.drive import detect_shots
from argus_core.abstract.scenes import ShotFeatures, group_scenes, shot_histograms
from tests import abstract_media as am
from tests.data import DataUnavailable, footage_or_skip

MEGAMIND_CUTS = [4129, 6465, 8383]


def _built(fn):
    for name in ("bigbuckbunny", "carphone_pristine", "vtest", "tree", "Megamind"):
        footage_or_skip(name)
    try:
        return fn()
    except DataUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def sets():
    return [_built(am.build_mixed), _built(am.build_gradual)]


def _shots(how: str, path: str, step: float):
    if how == "two-pass":
        return detect_shots(path, step)
    # the abstracts' one pass (shots only: the tap in chunks on every core, cuts refined from the pass)
    return run.analyse(path, run.Options(features=False, tap_step_s=step))


@pytest.mark.parametrize("how", ["one-pass", "two-pass"])
@pytest.mark.parametrize("step", [0.1, 0.2])
def test_f1_types_and_exact_cuts(sets, step, how):
    tp = fp = fn = 0
    for b in sets:
        r = _shots(how, str(b.path), step)
        found = [(x.start_ms / 1000, x.end_ms / 1000) for x in r.boundaries]
        m = am.match(found, b.truth)
        tp, fp, fn = tp + m[0], fp + m[1], fn + m[2]
        for t in b.truth:          # each truth: its boundary has the right type; cuts on the exact frame
            hit = [x for x in r.boundaries if x.start_ms / 1000 <= t.end + 0.1 and x.end_ms / 1000 >= t.start - 0.1]
            assert hit and hit[0].type == t.type, (t, hit)
            if t.type == "cut":
                assert abs(hit[0].time_ms - t.start * 1000) <= 1000 / am.FPS, (t, hit[0])
        for fl in b.flashes:       # no boundary from a flash
            assert not [x for x in r.boundaries if x.start_ms / 1000 - 0.2 <= fl <= x.end_ms / 1000 + 0.2]
    assert am.f1(tp, fp, fn) >= 0.95, (tp, fp, fn)


@pytest.mark.parametrize("how", ["one-pass", "two-pass"])
def test_beats_pyscenedetect_adaptive(sets, how):
    pytest.importorskip("scenedetect")
    ours = theirs = [0, 0, 0]
    for b in sets:
        r = _shots(how, str(b.path), 0.1)
        o = am.match([(x.start_ms / 1000, x.end_ms / 1000) for x in r.boundaries], b.truth)
        t = am.match([(c, c) for c in am.pyscenedetect_cuts(b.path)], b.truth)
        ours = [p + q for p, q in zip(ours, o)]
        theirs = [p + q for p, q in zip(theirs, t)]
    assert am.f1(*ours) >= 0.95 and am.f1(*ours) > am.f1(*theirs), (ours, theirs)


@pytest.mark.parametrize("name", ["bigbuckbunny", "carphone_pristine", "tree"])
def test_single_shot_footage_has_no_boundary(name):
    """Motion (tree.avi's hand across the lens, a talking head in a car) is not a boundary."""
    r = detect_shots(str(footage_or_skip(name)), 0.1)
    assert r.boundaries == [] and len(r.shots) == 1


def test_megamind_cuts_and_one_scene():
    r = detect_shots(str(footage_or_skip("Megamind")), 0.1)
    frame = 1000 / r.fps
    assert len(r.boundaries) == 3
    assert all(abs(b.time_ms - t) <= frame for b, t in zip(r.boundaries, MEGAMIND_CUTS))
    assert all(b.type == "cut" for b in r.boundaries)
    spans = [(s.start_ms, s.end_ms) for s in r.shots]
    feats = [ShotFeatures(s, e, h) for (s, e), h in zip(spans, shot_histograms(r.sample_ms, r.histograms, spans))]
    assert [(s.first_shot, s.last_shot) for s in group_scenes(feats)] == [(0, 3)]


def test_change_of_place_starts_a_scene():
    for name in ("Megamind", "vtest", "bigbuckbunny"):
        footage_or_skip(name)
    b = am.build([am.Piece("Megamind", 0.2, 10.8), am.Piece("vtest", 5.0, 5.0, "cut"),
                  am.Piece("bigbuckbunny", 0.0, 4.0, "dissolve", 0.8)], [], "places")
    r = detect_shots(str(b.path), 0.1)
    assert len(r.shots) == 6, r.boundaries
    spans = [(s.start_ms, s.end_ms) for s in r.shots]
    feats = [ShotFeatures(s, e, h) for (s, e), h in zip(spans, shot_histograms(r.sample_ms, r.histograms, spans))]
    assert [(s.first_shot, s.last_shot) for s in group_scenes(feats)] == [(0, 3), (4, 4), (5, 5)]
