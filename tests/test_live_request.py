"""Which requests are live (issue 12), and the service's async-only rule for them."""

from __future__ import annotations

import pytest

from argus_core.errors import InvalidRequest
from argus_core.media.source import FileSource, LiveSource, is_live_uri, source_for
from argus_core.request import is_live_request, parse_request
from argus_http.live import check_live


@pytest.mark.parametrize("uri,flag,live", [
    ("rtmp://h/live/x", False, True), ("rtsp://h/s", False, True), ("srt://h:9000", False, True),
    ("http://h/live.m3u8", False, False),  # a VOD playlist unless the request says live
    ("http://h/live.m3u8", True, True), ("https://h/stream.ts", True, True), ("http://h/a.flv", True, True),
    ("/tmp/a.mp4", True, False), ("file:///tmp/a.ts", True, False),
])
def test_live_rule(uri, flag, live):
    assert is_live_uri(uri, flag) is live
    assert isinstance(source_for(uri, live=flag), LiveSource if live else FileSource)


def body(uri, **params):
    return {"data": {"uri": uri}, "params": params, "ops": [{"op": "pulp"}]}


def test_sync_live_is_invalid_parameters():
    with pytest.raises(InvalidRequest) as e:
        check_live(parse_request(body("rtmp://h/live/x")))
    assert e.value.message == "invalid parameters" and "async" in e.value.detail
    check_live(parse_request(body("rtmp://h/live/x", **{"async": True})))
    check_live(parse_request(body("http://h/v.mp4")))
    assert is_live_request(parse_request(body("http://h/l.m3u8", live={"timeout": 3})))


def test_live_timeout_must_be_seconds():
    with pytest.raises(InvalidRequest):
        parse_request(body("rtmp://h/x", live={"timeout": -1}))
