"""The ``argus`` command: ``analyze`` a video, list ``models``, ``serve`` the API, run a queue ``worker``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Sequence

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


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
    p.add_argument("--workers", type=int, default=None, help="inference processes (default 1)")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bar on stderr (auto: only on a terminal)")
    p.add_argument("--pretty", action="store_true", help="indent the JSON")


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /v1/video`` body equivalent of the command line."""
    per_op = json.loads(args.params) if args.params else {}
    if not isinstance(per_op, dict):
        per_op = {"__invalid__": per_op}
    vframe = {k: v for k, v in (("mode", args.mode), ("interval", args.interval), ("ss", args.ss),
                                ("t", args.t)) if v is not None}
    params: dict[str, Any] = {"vframe": vframe}
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
            raise BadOp(detail=f"unknown op {unknown[0]!r}")
        with Engine(decoders=args.decoders, workers=args.workers, ops=sorted(set(args.ops))) as engine:
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
        print(json.dumps({"error": exc.message}), file=sys.stdout)
        print(f"argus: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT if 400 <= exc.status < 500 else EXIT_FAILED
    except json.JSONDecodeError:
        print(json.dumps({"error": "invalid parameters"}))
        print("argus: invalid parameters (--params is not JSON)", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(result, ensure_ascii=False, indent=2 if args.pretty else None))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List ops, their models, licences and readiness (or ``check [--write] FOLDER…``)."""
    if args.check:
        if args.check[0] != "check":
            print("usage: argus models [--json] | argus models check [--write] FOLDER...", file=sys.stderr)
            return EXIT_BAD_INPUT
        from argus_core.runtime.manifest import _main as check_main

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
    m = sub.add_parser("models", help="list ops, models, licences and whether each is ready; "
                                      "`argus models check [--write] models/<name>` verifies a model")
    m.add_argument("--json", action="store_true")
    m.add_argument("check", nargs="*", help=argparse.SUPPRESS)
    m.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    m.add_argument("--runtime", action="store_true",
                   help="with --json: {runtime: threads/batch chosen for this machine, ops: [...]}")
    sub.add_parser("serve", help="run the HTTP API (see `argus serve --help`)")
    sub.add_parser("worker", help="run a queue worker (see `argus worker --help`)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "analyze":
        return cmd_analyze(args)
    return cmd_models(args)


if __name__ == "__main__":
    sys.exit(main())
