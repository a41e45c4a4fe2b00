"""waitress's own error answers (413 body too large, 431 headers too large, 400 unparsable request, …) as the
same JSON every other error has (``{"error": message}``, CONTRACT §1), instead of waitress's plain text.

waitress answers these itself, before the application sees the request — which is the point for 413: a
``Content-Length`` above the limit is refused when the headers arrive, before any of the body is read or
buffered (issue 10: a 300 MB upload used to land in /tmp first).
"""

from __future__ import annotations

from typing import Any

import msgspec
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

#: waitress status → the message our own handlers use for it
MESSAGES = {400: "invalid parameters", 413: "request body too large", 431: "request headers too large",
            501: "not implemented"}


def json_error(code: int, reason: str) -> bytes:
    return msgspec.json.encode({"error": MESSAGES.get(code, reason.lower())})


class JsonErrorTask(ErrorTask):
    def execute(self) -> None:
        e = self.request.error
        body = json_error(e.code, e.reason)
        self.status = f"{e.code} {e.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask


def use_json_errors(server: Any) -> None:
    """Make a server made by ``waitress.create_server`` answer its own errors in JSON (every listener)."""
    server.channel_class = JsonErrorChannel
    for sub in list(getattr(server, "map", {}).values()):  # MultiSocketServer: one server per listener
        if hasattr(sub, "channel_class"):
            sub.channel_class = JsonErrorChannel
