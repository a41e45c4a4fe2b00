"""``argus abstract <file-or-url>``: a video abstract (CONTRACT §12) printed as the GET response JSON on stdout,
progress on stderr. Runs in this process (no engine processes, no server): one decode pass, the ops loaded
here (:mod:`argus_core.abstract.run`)."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("abstract", help="a video abstract (shots, scenes, clips, programme) as JSON")
    p.add_argument("uri", help="a local path, file:// or http(s):// URL")
    p.add_argument("--layers", default="0,1,2", help="abstract levels: 0 programme, 1 clips, 2 scenes, 3 shots")
    p.add_argument("--lang", choices=("zh", "en"), default="zh", help="text language (default zh)")
    p.add_argument("--video-type", default="general", help="news | tv_play | tv_show | general")
    p.add_argument("--shots-only", action="store_true", help="no models: shot boundaries and cues only")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress on stderr (auto: only on a terminal)")
    p.add_argument("--pretty", action="store_true", help="indent the JSON")
    p.add_argument("--report", default=None, metavar="OUT.html",
                   help="also write the timeline report: the levels as lanes with keyframes and texts")


def _error(code: str, message: str) -> dict[str, Any]:
    return {"status": "ERROR", "error": {"code": code, "message": message}}


def cmd_abstract(args: argparse.Namespace) -> int:
    from argus_core.abstract import run
    from argus_core.errors import ArgusError

    show = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    try:
        layers = run.parse_layers(args.layers)
    except ValueError as exc:
        print(json.dumps(_error("InvalidParameter", str(exc))))
        return EXIT_BAD_INPUT
    if args.video_type not in run.VIDEO_TYPES:
        print(json.dumps(_error("InvalidParameter", f"videoType must be one of {', '.join(run.VIDEO_TYPES)}")))
        return EXIT_BAD_INPUT
    opts = run.Options(layers=layers, language=args.lang, video_type=args.video_type,
                       features=not args.shots_only)

    def progress(p: run.Progress) -> None:
        if show:
            sys.stderr.write(f"\r{p.percent:3d}%  {p.shots} shots")
            sys.stderr.flush()

    try:
        models = None if args.shots_only else run.shared_models()
        body = run.get_response(args.uri, secrets.token_hex(10), opts, models=models, progress=progress)
    except run.AbstractError as exc:
        if show:
            sys.stderr.write("\n")
        print(json.dumps(_error(exc.code, exc.message), ensure_ascii=False))
        print(f"argus: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT if exc.code == "InvalidMedia" else EXIT_FAILED
    except ArgusError as exc:
        print(json.dumps(_error("InternalError", exc.message)))
        return EXIT_FAILED
    if show:
        sys.stderr.write("\n")
    print(json.dumps(body, ensure_ascii=False, indent=2 if args.pretty else None))
    if args.report:
        from . import report
        from .cli import _write

        _write(args.report, report.build(body, source=args.uri))
    return 0
