"""The timeline report in a real headless Chromium (Selenium + chromedriver), CONTRACT §14.

Checks: no console errors; every segment drawn at ``offset / duration`` of its lane; thumbnails decode
(``naturalWidth > 0``); clicking a segment lists its cuts, with boxes over the thumbnail for detections.
A 2-hour synthetic result with 1,500 cuts is timed against an empty report in the same browser (figures in
``bench/RESULTS.md``; only a generous bound is asserted here).

Needs Debian ``chromium`` + ``chromium-driver`` and PyPI ``selenium`` (the ``test`` extra): skipped when
absent, a failure when ``ARGUS_TEST_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np
import pytest

from argus_core import verdict
from argus_http import report

from . import videos
from .data import footage_or_skip


def _need(what: str) -> None:
    if os.environ.get("ARGUS_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test needs {what}")
    pytest.skip(f"browser test needs {what}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _need("selenium (pip install selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        _need("chromium and chromedriver (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(driver_bin), options=opts)
    try:
        yield drv
    finally:
        drv.quit()


def _open(drv: Any, path: Path) -> None:
    """Load a page (``get`` returns after the load event) and wait for the page's first render."""
    drv.get_log("browser")  # drop earlier messages
    drv.get(path.as_uri())
    for _ in range(200):
        if drv.execute_script("return !!window.__argus"):
            return
        time.sleep(0.05)
    raise AssertionError("the report never finished rendering")


def _console_errors(drv: Any) -> list[dict]:
    return [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


GEOMETRY_JS = """
var out = [];
document.querySelectorAll('#lanes .lane').forEach(function(lane){
  var L = lane.getBoundingClientRect();
  lane.querySelectorAll('.seg').forEach(function(s){
    var r = s.getBoundingClientRect();
    out.push([+s.dataset.b, +s.dataset.e, r.left - L.left, r.width, L.width]);
  });
});
return out;
"""


def _check_geometry(drv: Any, duration: int, expected_segments: int) -> None:
    rows = drv.execute_script(GEOMETRY_JS)
    assert len(rows) == expected_segments
    for b, e, left, width, lane_w in rows:
        assert abs(left - b / duration * lane_w) <= 1.0, (b, left, lane_w)
        assert abs(width - max(3.0, (e - b) / duration * lane_w)) <= 1.0, (b, e, width)


def _thumbs_loaded(drv: Any, selector: str) -> list[int]:
    return drv.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(function(i){ return i.naturalWidth; })",
        selector)


def test_real_footage_report_in_chromium(browser, tmp_path: Path) -> None:
    """vtest.avi (opencv-doc: pedestrians) through the real engine: detection + pulp; the page in Chromium."""
    from argus_core import Engine

    video = footage_or_skip("vtest")
    body = {"data": {"uri": str(video)}, "params": {"vframe": {"mode": 0, "interval": 4}},
            "ops": [{"op": "detection", "params": {"other": {"suggestion": {"review": {"person": 0.5}}}}},
                    {"op": "pulp"}]}
    with Engine(decoders=1, workers=1, ops=["detection", "pulp"]) as engine:
        result = engine.analyze(body)
    overall = verdict.annotate(result, verdict.policies_of(body))
    page = tmp_path / "vtest.html"
    page.write_text(report.build(result, source=str(video)), encoding="utf-8")

    drv = browser
    _open(drv, page)
    assert _console_errors(drv) == []
    segments = sum(len(r["segments"]) for r in result.values())
    duration = drv.execute_script("return window.__argus.duration")
    assert 78000 <= duration <= 80000  # vtest.avi is 79.5 s
    _check_geometry(drv, duration, segments)
    strip = _thumbs_loaded(drv, "#strip img")
    assert strip and all(w > 0 for w in strip)
    assert drv.find_element("css selector", "#top .badge").text.lower() == overall

    # click the detection segment with the most cuts: its cuts, each with a loaded thumbnail and boxes
    det = result["detection"]["segments"]
    si = max(range(len(det)), key=lambda i: len(det[i]["cuts"]))
    seg = drv.find_element("css selector", f'#lanes .seg[data-op="0"][data-i="{si}"]')
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", seg)
    seg.click()
    cards = drv.find_elements("css selector", "#cuts .cut")
    assert len(cards) == min(60, len(det[si]["cuts"]))
    assert [int(c.get_attribute("data-o")) for c in cards] == [c["offset"] for c in det[si]["cuts"]][:60]
    assert all(w > 0 for w in _thumbs_loaded(drv, "#cuts .frame img"))
    n_boxes = sum(len(c["result"]["detections"]) for c in det[si]["cuts"][:60])
    assert n_boxes > 0 and len(drv.find_elements("css selector", "#cuts .box")) == n_boxes
    # a box sits where its pts say, relative to the shown thumbnail
    first = next(c for c in det[si]["cuts"] if c["result"]["detections"])
    x0 = min(p[0] for p in first["result"]["detections"][0]["pts"])
    geo = drv.execute_script("""
        var card = document.querySelector('#cuts .cut[data-o="' + arguments[0] + '"]');
        var img = card.querySelector('img').getBoundingClientRect(), box = card.querySelector('.box').getBoundingClientRect();
        return [box.left - img.left, img.width];""", first["offset"])
    assert abs(geo[0] - x0 / 768 * geo[1]) <= 2.5  # vtest is 768x576
    # hover shows the tooltip
    from selenium.webdriver import ActionChains

    ActionChains(drv).move_to_element(seg).perform()
    assert drv.find_element("css selector", "#tip").is_displayed()
    assert _console_errors(drv) == []
    shot = tmp_path / "report-vtest.png"
    drv.save_screenshot(str(shot))
    _keep(shot)


def test_abstract_tree_in_chromium(browser, tmp_path: Path) -> None:
    """Megamind.avi (opencv-doc: one dinner scene in 4 shots) abstracted for real, all four levels, English:
    the page shows one lane per level above nothing else, every item at its time span, keyframes decoded,
    and a click on a shot shows that shot's own text (issue 13: "the same page shows the shot/scene/clip
    tree with keyframes and texts")."""
    from argus_core.abstract import run

    video = footage_or_skip("Megamind")
    opts = run.Options(layers=(0, 1, 2, 3), language="en")
    body = run.get_response(str(video), "megamind", opts, models=run.shared_models())
    items = body["clipResults"]
    shots = sorted((i for i in items if i["level"] == 3 and "type" not in i), key=lambda i: i["startTimeInMS"])
    cues = [i for i in items if "type" in i]  # technical cues (Megamind opens on black frames): their own lane
    assert len(shots) >= 3
    page = tmp_path / "megamind-abstract.html"
    page.write_text(report.build(body, source=str(video)), encoding="utf-8")

    drv = browser
    _open(drv, page)
    assert _console_errors(drv) == []
    lanes = drv.execute_script("return Array.from(document.querySelectorAll('#lanes .lane')).map("
                               "function(l){ return l.dataset.op; })")
    assert lanes == ["programme", "clips", "scenes", "shots"] + (["cues"] if cues else [])
    duration = drv.execute_script("return window.__argus.duration")
    # durationInSecond is whole seconds (the seed); the axis is the file's own duration, grabbed with the thumbs
    assert body["durationInSecond"] * 1000 <= duration < (body["durationInSecond"] + 1) * 1000
    _check_geometry(drv, duration, len(items))
    assert drv.find_elements("css selector", "#top .badge") == []  # an abstract alone carries no verdict
    assert not drv.find_element("css selector", "#controls").is_displayed()  # nor a colour-by-verdict choice
    strip = _thumbs_loaded(drv, "#strip img")
    assert strip and all(w > 0 for w in strip)
    k = len(shots) // 2
    seg = drv.find_element("css selector", f'#lanes .seg[data-op="3"][data-i="{k}"]')
    seg.click()
    assert drv.find_element("css selector", "#detail p.abstract").text == shots[k]["clipAbstract"].strip()
    assert all(w > 0 for w in _thumbs_loaded(drv, "#cuts .frame img"))  # the shot's keyframe
    assert drv.find_elements("css selector", "#detail .badge") == []  # a keyframe card has no verdict either
    assert _console_errors(drv) == []
    shot = tmp_path / "report-megamind-abstract.png"
    drv.save_screenshot(str(shot))
    _keep(shot)


def _keep(shot: Path) -> None:
    """Screenshots stay in the pytest tmp dir; ``ARGUS_TEST_ARTIFACTS`` copies them out for CI artefacts."""
    assert shot.stat().st_size > 10_000
    out = os.environ.get("ARGUS_TEST_ARTIFACTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(out) / shot.name)


def synthetic_two_hours(n_cuts: int = 1500, seed: int = 7, per_segment: int = 3) -> tuple[dict, dict[int, report.Thumb]]:
    """A 2-hour result: pulp, detection and terror over 1,500 cuts in total, segments of 1–``per_segment`` cuts, with
    real JPEG thumbnails (600, the default cap) made from frames of PyAV-encoded cards."""
    rng = np.random.default_rng(seed)
    duration = 2 * 3600 * 1000
    per_op = {"pulp": 700, "detection": 500, "terror": 300}
    assert sum(per_op.values()) == n_cuts
    result: dict[str, Any] = {}
    for op, n in per_op.items():
        offsets = np.sort(rng.choice(duration // 1000, size=n, replace=False)) * 1000
        segs, i = [], 0
        while i < n:
            k = int(rng.integers(1, per_segment + 1))
            cuts = []
            for o in offsets[i:i + k]:
                if op == "detection":
                    r = {"detections": [{"index": 0, "class": "person", "score": 0.8,
                                         "pts": [[100, 80], [300, 80], [300, 400], [100, 400]]}]}
                    lab = ("person", 0.8)
                else:
                    lab = (str(int(rng.integers(0, 3))) if op == "pulp" else str(int(rng.integers(0, 2))),
                           float(rng.uniform(0.3, 1.0)))
                    r = {"label": int(lab[0]), "score": lab[1], "review": lab[1] < 0.6}
                cuts.append({"offset": int(o), "result": r})
            segs.append({"offset_begin": cuts[0]["offset"], "offset_end": cuts[-1]["offset"],
                         "labels": [{"label": lab[0], "score": lab[1]}], "cuts": cuts})
            i += k
        result[op] = {"labels": [], "segments": segs}
    for r in result.values():  # segment labels: the union of its cuts' labels, max score
        for s in r["segments"]:
            best: dict[str, float] = {}
            for c in s["cuts"]:
                res = c["result"]
                name, score = ("person", 0.8) if "detections" in res else (str(res["label"]), res["score"])
                best[name] = max(best.get(name, 0.0), score)
            s["labels"] = [{"label": n, "score": v} for n, v in best.items()]
    verdict.annotate(result)
    thumbs = {}
    for o in report.pick_offsets(result, report.THUMB_LIMIT):
        img = videos.index_card(o // 1000 % 4096, 640, 480)
        thumbs[o] = report.thumbnail(av.VideoFrame.from_ndarray(img, format="rgb24"))
    return result, thumbs


@pytest.mark.parametrize("per_segment", [3, 1], ids=["1-3-cuts-per-segment", "1500-segments"])
def test_two_hour_result_with_1500_cuts_renders_fast(browser, tmp_path: Path, per_segment: int) -> None:
    result, thumbs = synthetic_two_hours(per_segment=per_segment)
    duration = 2 * 3600 * 1000
    big = tmp_path / "two-hours.html"
    big.write_text(report.render(result, thumbs=thumbs, duration_ms=duration, title="2 h synthetic"), encoding="utf-8")
    empty = tmp_path / "empty.html"
    empty.write_text(report.render({}, duration_ms=duration, title="empty"), encoding="utf-8")
    drv = browser

    def timed(path: Path) -> tuple[float, float]:
        t0 = time.perf_counter()
        _open(drv, path)
        drv.execute_script("return document.readyState")
        wall = time.perf_counter() - t0
        return wall, drv.execute_script(
            "var n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd || performance.now();") / 1000

    base = [timed(empty) for _ in range(3)]
    runs = [timed(big) for _ in range(3)]
    assert _console_errors(drv) == []
    render_ms = drv.execute_script("return window.__argus.renderMs")
    segments = sum(len(r["segments"]) for r in result.values())
    _check_geometry(drv, duration, segments)
    assert all(w > 0 for w in _thumbs_loaded(drv, "#strip img"))
    wall = sorted(w for w, _ in runs)[1]
    load = sorted(l for _, l in runs)[1]
    base_wall = sorted(w for w, _ in base)[1]
    print(f"\nreport bench: 2 h, 1500 cuts, {segments} segments, {len(thumbs)} thumbnails, "
          f"{big.stat().st_size / 1e6:.2f} MB: get→rendered {wall:.3f} s (median of 3), load event {load:.3f} s, "
          f"script render {render_ms:.0f} ms; empty page {base_wall:.3f} s; ratio {wall / base_wall:.2f}x")
    assert wall < 10.0  # generous: the < 2 s figure is recorded in bench/RESULTS.md, not asserted

    # zoom in: the segments stay at their offsets; click one and its cuts show
    drv.find_element("css selector", "#zin").click()
    drv.find_element("css selector", "#zin").click()
    _check_geometry(drv, duration, segments)
    det = result["detection"]["segments"]
    si = next(i for i, s in enumerate(det) if i >= 3 and s["cuts"][0]["offset"] in thumbs)
    seg = drv.find_element("css selector", f'#lanes .seg[data-op="1"][data-i="{si}"]')
    drv.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'center'})", seg)
    seg.click()
    assert len(drv.find_elements("css selector", "#cuts .cut")) == len(det[si]["cuts"])
    assert drv.find_elements("css selector", "#cuts .box")  # its first cut has a thumbnail, with the box
    shot = tmp_path / "report-two-hours.png"
    drv.save_screenshot(str(shot))
    _keep(shot)
