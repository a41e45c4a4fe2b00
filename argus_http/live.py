"""Live streams at the service edge (issue 12): the rules the HTTP adapter adds for live jobs."""

from __future__ import annotations

from argus_core.errors import InvalidRequest
from argus_core.request import VideoRequest, is_live_request


def check_live(parsed: VideoRequest) -> None:
    """A live job never ends by itself, so it is async only: a sync one is 400 ``invalid parameters``."""
    if is_live_request(parsed) and not parsed.params.async_:
        raise InvalidRequest(detail="live streams (rtmp/rtsp/srt, or http(s) with params.live) run until "
                                    "stopped: submit them with params.async = true and follow the callbacks")
