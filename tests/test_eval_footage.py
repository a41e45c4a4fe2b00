"""Issue 9 targets on real footage nobody here made (bench/eval_footage.py; about 2-4 minutes on 2 cores)."""

from __future__ import annotations

import pytest

from tests.data import footage_or_skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def figures():
    from bench.eval_footage import CLIPS, OPS, load_labels, run, score

    for name in CLIPS:
        if name != "subtitles":
            footage_or_skip(name)
    answers, _ = run(CLIPS, tuple(o for o in OPS if o != "ocr"))
    return score(answers, load_labels())


def test_no_false_porn_or_sexy(figures):
    assert figures["pulp"]["porn_0"] == 0, figures["pulp"]["porn_0_at"]
    assert figures["pulp"]["sexy_1_unfair"] == 0, figures["pulp"]["sexy_1_at"]


def test_no_false_terror(figures):
    t = figures["terror"]
    assert t["terror_1"] == 0 and t["terror_classify_evidence"] == 0, t


def test_persons_and_cars(figures):
    d = figures["detection"]
    assert d["person_recall"] >= 0.95 and d["false_persons_per_free_frame"] <= 1
    assert d["vtest_static_persons_per_frame"] <= 1
    assert d["car_recall"] >= 0.5, d


def test_static_shots_few_segments(figures):
    for clip, per in figures["segments_static"].items():
        assert all(n <= 3 for n in per.values()), (clip, per)
