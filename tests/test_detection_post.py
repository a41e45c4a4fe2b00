"""Table tests of the detector post-processing (argus_core.post): GFL and CenterNet decoding, NMS, frame
mapping.

No model here: inputs are hand-made arrays whose right answer can be worked out on paper.
"""

from __future__ import annotations

import numpy as np
import pytest

from argus_core.post.boxes import Candidates, class_aware_nms, corner_points, iou_one_to_many, nms, to_frame
from argus_core.media.renditions import FrameSpec
from argus_core.post.heads import (GFLHead, cell_centres, decode_centernet, decode_gfl, distribution_distances,
                                   heatmap_peaks)

BIG = 50.0  # a logit this much above the others makes its bin's softmax probability ~1


def peaked(bins_per_side: list[int], reg_max: int) -> np.ndarray:
    """Distribution logits [4·(reg_max+1)] whose expectation is the given bin for each of l, t, r, b."""
    d = np.zeros((4, reg_max + 1), np.float32)
    for side, k in enumerate(bins_per_side):
        d[side, k] = BIG
    return d.ravel()


# -- GFL integral ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "side_logits, reg_max, expected",
    [
        ([[BIG if k == 3 else 0 for k in range(11)]] * 4, 10, [3, 3, 3, 3]),  # one-hot → that bin
        ([[0.0] * 11] * 4, 10, [5, 5, 5, 5]),  # uniform → the middle, reg_max / 2
        ([[BIG if k in (2, 4) else 0 for k in range(11)]] * 4, 10, [3, 3, 3, 3]),  # two equal peaks → between
        ([[BIG if k == 0 else 0 for k in range(8)], [BIG if k == 7 else 0 for k in range(8)],
          [0.0] * 8, [BIG if k == 1 else 0 for k in range(8)]], 7, [0, 7, 3.5, 1]),  # each side on its own
        ([[np.log(3.0), 0.0, 0.0, 0.0]] * 4, 3, [1.0, 1.0, 1.0, 1.0]),  # p = (1/2, 1/6, 1/6, 1/6) → 1
    ],
)
def test_distribution_expectation(side_logits, reg_max, expected):
    d = np.asarray(side_logits, np.float64).reshape(1, -1)
    np.testing.assert_allclose(distribution_distances(d, reg_max)[0], expected, atol=1e-9)


def test_distribution_rejects_wrong_bin_count():
    with pytest.raises(ValueError):
        distribution_distances(np.zeros((2, 40)), 10)  # 40 != 4 × 11


def test_cell_centres_row_major_with_offset():
    c = cell_centres(cols=3, rows=2, stride=8, offset=0.5)
    np.testing.assert_allclose(c, [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]])
    np.testing.assert_allclose(cell_centres(2, 1, 16, 0.0), [[0, 0], [16, 0]])


# -- decoding ---------------------------------------------------------------------------------------------

# A tiny head: 64×32 input, strides 8 and 16 → grids 8×4 (32 cells) and 4×2 (8 cells), 3 classes, reg_max 4.
HEAD = GFLHead(input_w=64, input_h=32, strides=(8, 16), reg_max=4, center_offset=0.5)
N_CLASSES = 3


def blank_level(stride: int) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = HEAD.grid(stride)
    n = cols * rows
    return np.zeros((n, N_CLASSES), np.float32), np.zeros((n, 4 * (HEAD.reg_max + 1)), np.float32)


@pytest.mark.parametrize(
    "level, cell, cls, score, ltrb_bins, expected_box",
    [
        # stride 8, cell 0 (row 0, col 0): centre (4, 4); distances bins×8
        (0, 0, 1, 0.9, [0, 0, 1, 1], [4, 4, 12, 12]),
        # stride 8, cell 11 = row 1, col 3: centre (28, 12); l=2·8, t=1·8, r=3·8, b=0
        (0, 11, 2, 0.6, [2, 1, 3, 0], [12, 4, 52, 12]),
        # stride 16, cell 5 = row 1, col 1: centre (24, 24); l=t=r=b=1·16
        (1, 5, 0, 0.5, [1, 1, 1, 1], [8, 8, 40, 40]),
        # boxes may leave the input (clipping is done when mapping to the frame)
        (1, 0, 0, 0.7, [4, 4, 0, 0], [-56, -56, 8, 8]),
    ],
)
def test_decode_one_cell(level, cell, cls, score, ltrb_bins, expected_box):
    levels = [blank_level(s) for s in HEAD.strides]
    sc, dist = levels[level]
    sc[cell, cls] = score
    dist[cell] = peaked(ltrb_bins, HEAD.reg_max)
    out = decode_gfl([l[0] for l in levels], [l[1] for l in levels], HEAD, min_score=0.35)
    assert len(out) == 1
    np.testing.assert_allclose(out.boxes[0], expected_box, atol=1e-4)
    assert out.classes[0] == cls and out.scores[0] == pytest.approx(score)


def test_decode_threshold_and_multiclass_cells():
    levels = [blank_level(s) for s in HEAD.strides]
    sc8, d8 = levels[0]
    sc8[5] = [0.8, 0.4, 0.34]  # two classes pass 0.35 in one cell → two candidates, same box
    d8[5] = peaked([1, 1, 1, 1], HEAD.reg_max)
    sc8[6, 0] = 0.35  # exactly at the threshold: kept (>=)
    levels[1][0][7, 2] = 0.2  # below: dropped
    out = decode_gfl([l[0] for l in levels], [l[1] for l in levels], HEAD, min_score=0.35)
    got = sorted(zip(out.classes.tolist(), [round(s, 3) for s in out.scores.tolist()]))
    assert got == [(0, 0.35), (0, 0.8), (1, 0.4)]
    two = out.boxes[np.isclose(out.scores, 0.8) | np.isclose(out.scores, 0.4)]
    np.testing.assert_allclose(two[0], two[1])  # cell 5 = row 0, col 5: centre (44, 4) ± 8
    np.testing.assert_allclose(two[0], [36, -4, 52, 12], atol=1e-4)


def test_decode_nothing_and_bad_shapes():
    levels = [blank_level(s) for s in HEAD.strides]
    out = decode_gfl([l[0] for l in levels], [l[1] for l in levels], HEAD, min_score=0.35)
    assert len(out) == 0 and out.boxes.shape == (0, 4)
    with pytest.raises(ValueError):  # a level with the wrong number of cells
        decode_gfl([levels[0][0][:-1], levels[1][0]], [levels[0][1], levels[1][1]], HEAD, 0.35)
    with pytest.raises(ValueError):  # one level missing
        decode_gfl([levels[0][0]], [levels[0][1]], HEAD, 0.35)


def test_grid_rounds_up_for_sizes_not_divisible_by_the_stride():
    assert GFLHead(416, 416).grid(32) == (13, 13)
    assert GFLHead(420, 300).grid(32) == (14, 10)


# -- CenterNet ----------------------------------------------------------------------------------------------


def test_heatmap_peaks_keep_local_maxima_per_class():
    heat = np.zeros((4, 5, 2), np.float32)
    heat[1, 1, 0], heat[1, 2, 0], heat[2, 2, 0] = 0.9, 0.5, 0.6  # one object: only its peak survives
    heat[1, 2, 1] = 0.4  # another class on the same spot is not suppressed by class 0
    heat[3, 4, 0] = 0.3  # the corner: padding never wins
    heat[0, 4, 0] = heat[0, 3, 0] = 0.7  # a plateau: both kept (TF's MaxPool + Equal)
    peaks = heatmap_peaks(heat, 3)
    assert sorted(zip(*np.nonzero(peaks))) == [(0, 3, 0), (0, 4, 0), (1, 1, 0), (1, 2, 1), (3, 4, 0)]
    assert peaks[1, 1, 0] == pytest.approx(0.9) and peaks[2, 2, 0] == 0


# 3 rows × 4 columns × 3 classes at stride 4 (a 16×12 input); sides l, t, r, b in input pixels
@pytest.mark.parametrize(
    "y, x, cls, score, sides, expected_box",
    [
        (0, 0, 0, 0.9, [1, 1, 3, 3], [-1, -1, 3, 3]),  # cell (0, 0) is at (0, 0): no half-cell offset
        (1, 2, 1, 0.6, [3, 4, 5, 6], [5, 0, 13, 10]),  # (4·2, 4·1) = (8, 4)
        (2, 3, 2, 0.31, [0, 0, 0, 0], [12, 8, 12, 8]),
    ],
)
def test_centernet_one_peak(y, x, cls, score, sides, expected_box):
    heat, wh = np.zeros((3, 4, 3), np.float32), np.zeros((3, 4, 4), np.float32)
    heat[y, x, cls] = score
    wh[y, x] = sides
    out = decode_centernet(heat, wh, stride=4, min_score=0.3)
    assert len(out) == 1 and out.classes[0] == cls and out.scores[0] == pytest.approx(score)
    np.testing.assert_allclose(out.boxes[0], expected_box)


def test_centernet_top_k_threshold_and_order():
    heat, wh = np.zeros((3, 4, 3), np.float32), np.ones((3, 4, 4), np.float32)
    heat[0, 0, 0], heat[0, 3, 1], heat[2, 0, 2], heat[2, 3, 0] = 0.5, 0.8, 0.5, 0.2
    heat[0, 1, 0] = 0.45  # next to the 0.5 peak of its class: not a peak
    out = decode_centernet(heat, wh, 4, min_score=0.3)
    # best first; the tie (0.5, 0.5) keeps the lower flat index (row 0) first, as TF's TopKV2
    assert out.classes.tolist() == [1, 0, 2]
    np.testing.assert_allclose(out.scores, [0.8, 0.5, 0.5], rtol=1e-6)
    assert len(decode_centernet(heat, wh, 4, min_score=0.3, top_k=2)) == 2  # top-k before the threshold
    assert len(decode_centernet(heat, wh, 4, min_score=0.1)) == 4
    assert len(decode_centernet(np.zeros((3, 4, 3)), wh, 4, 0.3)) == 0
    with pytest.raises(ValueError):
        decode_centernet(heat, wh[:, :3], 4, 0.3)


@pytest.mark.parametrize("seed", range(5))
def test_centernet_equals_full_peak_picking(seed):
    # the decode tests the 3x3 maximum only where a value passes the floor; on random heatmaps (many
    # neighbouring values above it, ties included) that must equal peaks of the whole map, top-k, threshold
    rng = np.random.default_rng(seed)
    heat = rng.choice([0.1, 0.35, 0.5, 0.8], size=(6, 7, 3)).astype(np.float32) * rng.uniform(0.9, 1, (6, 7, 3))
    heat[0, 0, :] = heat[0, 1, :] = 0.9  # a tie across a border
    wh = rng.uniform(0, 9, (6, 7, 4)).astype(np.float32)
    flat = heatmap_peaks(heat, 3).ravel()
    order = np.argsort(-flat, kind="stable")[:20]
    order = order[flat[order] >= 0.3]
    out = decode_centernet(heat, wh, 4, min_score=0.3, top_k=20)
    cell, cls = np.divmod(order, 3)
    assert out.classes.tolist() == cls.tolist()
    np.testing.assert_allclose(out.scores, flat[order])
    y, x = np.divmod(cell, 7)
    np.testing.assert_allclose(out.boxes[:, 0], 4 * x - wh.reshape(-1, 4)[cell, 0], rtol=1e-6)


@pytest.mark.parametrize(
    "resize, src, peak_xy, sides, expected",
    [
        # 1280×720 letterboxed into 512²: the picture is 512×288 top-left, one scale 2.5 both ways
        ("letterbox", (1280, 720), (32, 18), [28, 32, 40, 24], [250, 100, 420, 240]),
        # the same frame stretched: x·1280/512, y·720/512
        ("stretch", (1280, 720), (32, 18), [28, 32, 40, 24], [250, 40 * 720 / 512, 420, 96 * 720 / 512]),
        # portrait 300×500 letterboxed: picture 307×512, a box reaching past the picture is clipped to the frame
        ("letterbox", (300, 500), (64, 64), [56, 56, 80, 8], [200 * 300 / 307, 200 * 500 / 512, 300, 264 * 500 / 512]),
    ],
)
def test_centernet_boxes_back_to_the_frame(resize, src, peak_xy, sides, expected):
    # what detection's Detector.candidates does: the rendition at the model size, scale = source / rendition
    spec = FrameSpec(512, 512, resize)
    vw, vh = spec.size_for(*src)
    heat, wh = np.zeros((128, 128, 80), np.float32), np.zeros((128, 128, 4), np.float32)
    x, y = peak_xy
    heat[y, x, 41] = 0.7
    wh[y, x] = sides
    out = decode_centernet(heat, wh, 4, 0.3)
    got = to_frame(out.boxes, src[0] / vw, src[1] / vh, *src)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# -- IoU and NMS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching edges
        ([0, 0, 10, 10], [2, 2, 4, 4], 4 / 100),  # contained
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # degenerate: no division by zero
        ([5, 5, 0, 0], [0, 0, 10, 10], 0.0),  # inverted box has no area
    ],
)
def test_iou(a, b, expected):
    assert iou_one_to_many(np.array(a), np.array([b]))[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    "boxes, scores, iou, max_keep, expected",
    [
        # duplicates of one object: the best survives
        ([[0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11]], [0.5, 0.9, 0.7], 0.6, 0, [1]),
        # disjoint objects: all survive, best first
        ([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], [0.3, 0.9, 0.6], 0.6, 0, [1, 2, 0]),
        # IoU exactly at the threshold (50/150 = 1/3) is not suppressed (only IoU > threshold is)
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 1 / 3, 0, [0, 1]),
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.3, 0, [0]),
        # chain: A suppresses B; C overlaps B a lot but A little → C survives (B is gone, not used)
        ([[0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]], [0.9, 0.8, 0.7], 0.4, 0, [0, 2]),
        # equal scores keep input order
        ([[0, 0, 10, 10], [20, 0, 30, 10]], [0.5, 0.5], 0.6, 0, [0, 1]),
        # max_keep caps the result
        ([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], [0.3, 0.9, 0.6], 0.6, 2, [1, 2]),
        # nothing in, nothing out
        (np.zeros((0, 4)), [], 0.6, 0, []),
    ],
)
def test_nms_table(boxes, scores, iou, max_keep, expected):
    keep = nms(np.asarray(boxes, np.float64), np.asarray(scores, np.float64), iou, max_keep=max_keep)
    assert keep.tolist() == expected


def test_class_aware_nms_suppresses_within_a_class_only():
    box = [10, 10, 50, 50]
    cands = Candidates(
        boxes=np.array([box, [11, 10, 51, 50], box, [200, 200, 240, 240]], np.float32),
        scores=np.array([0.9, 0.8, 0.7, 0.6], np.float32),
        classes=np.array([0, 0, 1, 0]),  # person, person (duplicate), cat on the same spot, far person
    )
    out = class_aware_nms(cands, 0.6)
    assert out.classes.tolist() == [0, 1, 0]
    np.testing.assert_allclose(out.scores, [0.9, 0.7, 0.6])
    assert len(class_aware_nms(cands, 0.6, max_keep=2)) == 2
    assert len(class_aware_nms(Candidates.empty(), 0.6)) == 0


# -- mapping to the frame ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "box, sx, sy, w, h, expected",
    [
        # a 416×416 stretched input back to 640×360: x·640/416, y·360/416
        ([104, 104, 312, 208], 640 / 416, 360 / 416, 640, 360, [160, 90, 480, 180]),
        # portrait source 300×500
        ([0, 208, 416, 416], 300 / 416, 500 / 416, 300, 500, [0, 250, 300, 500]),
        # clipping to the frame
        ([-20, -8, 500, 430], 1.0, 1.0, 416, 416, [0, 0, 416, 416]),
    ],
)
def test_to_frame(box, sx, sy, w, h, expected):
    np.testing.assert_allclose(to_frame(np.array([box]), sx, sy, w, h)[0], expected, atol=1e-9)


def test_corner_points_clockwise_from_top_left():
    assert corner_points([10.4, 20.6, 30.5, 40.0]) == [[10, 21], [30, 21], [30, 40], [10, 40]]
