"""Service settings: defaults < config file (TOML or JSON) < environment (``ARGUS_*``) < command-line flags.

Every limit and policy the service applies is a field here, so an operator can see all of them in one
place. ``Settings.resolve()`` fills values that depend on others (the SQLite file inside the data
directory, the frame store) and checks the combination.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

import msgspec

MiB = 1024 * 1024


class KeyPair(msgspec.Struct, frozen=True):
    """One client credential for Qiniu token auth (CONTRACT §11).

    ``uid`` scopes the jobs this key sees. ``queue`` lets the key use the worker-facing queue API
    (§8), which can lease anyone's jobs, so ordinary client keys should not have it.
    """

    access_key: str
    secret_key: str
    uid: str = ""
    queue: bool = False


class Settings(msgspec.Struct, kw_only=True):
    """All settings of ``argus serve`` and ``argus worker``. Times are seconds, sizes bytes."""

    # -- HTTP --------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 9000
    threads: int = 8
    max_body: int = 1 * MiB
    # -- storage -----------------------------------------------------------------------------------
    data_dir: str = "./argus-data"
    #: ``sqlite:///path`` (default: ``<data_dir>/argus.db``) or ``postgresql://user@host:port/db``.
    database_url: str = ""
    #: ``file://`` URIs are accepted only below this directory; empty refuses them (CONTRACT §1).
    media_root: str = ""
    #: Where ``params.save`` writes JPEGs (§10): a directory (default ``<data_dir>/frames``) or an
    #: fsspec URL such as ``s3://bucket/prefix``.
    save_store: str = ""
    # -- safety ------------------------------------------------------------------------------------
    #: Networks (CIDR) or host names that bypass the SSRF guard, e.g. ``["127.0.0.1/32"]`` in tests.
    ssrf_allow: list[str] = []
    #: Qiniu key pairs; empty turns auth off (every request is the anonymous uid "").
    auth_keys: list[KeyPair] = []
    #: seconds a signed X-Qiniu-Date may differ from the server's clock (replay window); 0 checks nothing
    auth_max_skew: float = 900.0
    #: refuse signed requests without an X-Qiniu-Date (closes replay for clients that all send one)
    auth_require_date: bool = False
    #: Standard Webhooks secret (``whsec_<base64>`` or any string); empty sends unsigned callbacks.
    webhook_secret: str = ""
    # -- requests and jobs -------------------------------------------------------------------------
    max_interval: float = 10.0
    #: Sync analyses running at once; more wait up to ``sync_wait`` then get 503.
    sync_concurrency: int = 2
    sync_wait: float = 1.0
    #: Async jobs one worker process runs at once (they share the engine's decoders).
    jobs: int = 2
    lease_seconds: float = 30.0
    max_attempts: int = 3
    #: Delay before a RESCHEDULED job (retryable error) may run again.
    retry_delay: float = 2.0
    #: How often an idle worker looks for jobs, and how often a running job checks for a kill.
    poll_interval: float = 1.0
    cancel_poll: float = 0.5
    sweep_interval: float = 5.0
    # -- callbacks (CONTRACT §7) -------------------------------------------------------------------
    callback_timeout: float = 10.0
    #: Delay before retry n (the last value repeats) until ``callback_window`` after the first try.
    callback_schedule: list[float] = msgspec.field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0])
    callback_window: float = 24 * 3600.0
    #: Random extra delay, as a fraction of each delay (0.2 = up to +20 %), so retries do not align.
    callback_jitter: float = 0.2
    callback_senders: int = 4
    #: Deliveries in flight to one receiver (host:port) at most, so a slow receiver holds at most this many
    #: of the ``callback_senders`` threads and every other receiver keeps the rest (issue 10).
    callback_per_receiver: int = 1
    #: How often the sender looks for due deliveries when nothing woke it.
    callback_poll: float = 1.0
    # -- engine ------------------------------------------------------------------------------------
    #: ``module:callable`` building the engine (tests and embedders may swap it).
    engine: str = "argus_core:Engine"
    decoders: int | None = None
    inference_workers: int | None = None
    models_dir: str | None = None
    max_duration: float = 6 * 3600.0
    max_download: int = 2 * 1024 * MiB
    max_frames: int = 3000
    #: operator settings handed to the ops (see README "Ops"): e.g. ``politician_gallery``,
    #: ``terror_keywords``, ``ocr_keywords``, ``galleries_dir``. Config file only (a table / object).
    op_options: dict[str, Any] = {}
    #: default verdict thresholds ``{op: {block: {label: score}, review: {...}, review_flag}}`` over the
    #: built-in ones (CONTRACT §14, :mod:`argus_core.verdict`); a request's ``params.other.suggestion`` wins.
    verdict_policy: dict[str, Any] = {}
    # -- video abstracts (CONTRACT §12) -------------------------------------------------------------
    #: ``notification`` names a PUT may give → the http(s) URL that receives ``{messageId, messageBody}`` when
    #: the task ends; another name is a 400. Env/flag form: ``name=url,name2=url2`` (or a JSON object).
    abstract_notifications: dict[str, str] = {}
    #: seconds one abstract may run before it ends in ``TimeOut``; 0: the seed's limits by duration
    #: (15 min below 3 min of video … 2 h + half the duration)
    abstract_time_limit: float = 0.0
    #: the caller's face gallery whose names ``enablePersonName`` uses (tv_play / tv_show); empty: none
    abstract_person_group: str = ""
    #: save each shot's and scene's keyframe as a JPEG in ``save_store`` (key ``abstract/<taskId>/<ms>.jpg``,
    #: like ``params.save``) and give its URI as ``keyframeURI`` (CONTRACT §12 extras); off: offsets only
    abstract_keyframes: bool = False
    #: thumbnails per ``GET /v1/jobs/video/<id>/report`` page (decoded from the source once; then cached)
    report_thumbs: int = 300
    # -- remote worker (``argus worker --queue-url``) ------------------------------------------------
    queue_url: str = ""
    access_key: str = ""
    secret_key: str = ""
    # -- process -----------------------------------------------------------------------------------
    log_level: str = "info"
    #: Run the callback sender / sweeper in this process (a worker attached to the database does too).
    run_sender: bool = True

    def resolve(self) -> "Settings":
        """Fill derived defaults and validate; returns self."""
        if not self.database_url:
            self.database_url = "sqlite:///" + str(Path(self.data_dir).resolve() / "argus.db")
        if not self.save_store:
            self.save_store = str(Path(self.data_dir).resolve() / "frames")
        if self.threads < self.sync_concurrency + 2:
            # Sync analyses hold a thread for the whole video; keep threads free for every other route.
            self.threads = self.sync_concurrency + 2
        for name in ("jobs", "sync_concurrency", "max_attempts", "callback_senders"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        from argus_core.verdict import check_config

        check_config(self.verdict_policy)
        for name, url in self.abstract_notifications.items():
            parts = urlsplit(url)
            if not name or parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"abstract_notifications: {name!r} needs an http(s) URL, not {url!r}")
        if self.abstract_time_limit < 0:
            raise ValueError("abstract_time_limit must be >= 0")
        if self.lease_seconds <= 0 or not self.callback_schedule:
            raise ValueError("lease_seconds must be > 0 and callback_schedule non-empty")
        return self

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_keys)


_FIELDS = {f.name: f for f in msgspec.structs.fields(Settings)}
_LIST_FIELDS = {"ssrf_allow", "callback_schedule"}
_MAP_FIELDS = {"abstract_notifications"}


def _parse_keys(text: str) -> list[dict[str, Any]]:
    """``AK:SK[:uid[:queue]]`` entries separated by commas (the env/CLI form of ``auth_keys``)."""
    keys = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        if len(parts) < 2:
            raise ValueError(f"auth key {item!r}: expected AK:SK[:uid[:queue]]")
        keys.append({"access_key": parts[0], "secret_key": parts[1],
                     "uid": parts[2] if len(parts) > 2 else "",
                     "queue": len(parts) > 3 and parts[3] in ("1", "true", "queue")})
    return keys


def _parse_map(text: str) -> dict[str, str]:
    """``name=value`` entries separated by commas, or a JSON object (the env/CLI form of a mapping)."""
    if text.lstrip().startswith("{"):
        return json.loads(text)
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r}: expected name=value")
        out[name.strip()] = value.strip()
    return out


def _from_text(name: str, text: str) -> Any:
    if name == "auth_keys":
        return _parse_keys(text)
    if name in _MAP_FIELDS:
        return _parse_map(text)
    if name in _LIST_FIELDS:
        return [s.strip() for s in text.split(",") if s.strip()]
    return text


def load_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML (``.toml``) or JSON config file into a dict of settings."""
    p = Path(path)
    raw = p.read_bytes()
    data = tomllib.loads(raw.decode()) if p.suffix == ".toml" else json.loads(raw)
    unknown = set(data) - set(_FIELDS)
    if unknown:
        raise ValueError(f"{p}: unknown settings {sorted(unknown)}")
    return data


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Settings named ``ARGUS_<NAME>`` in ``env`` (``ARGUS_DATABASE_URL``, ``ARGUS_PORT``, ...)."""
    out = {}
    for name in _FIELDS:
        key = "ARGUS_" + name.upper()
        if key in env and env[key] != "":
            out[name] = _from_text(name, env[key])
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``argus serve`` and ``argus worker``; unset flags leave lower layers alone."""
    a = parser.add_argument
    a("--config", help="settings file (.toml or .json); also ARGUS_CONFIG")
    a("--host")
    a("--port", type=int)
    a("--threads", type=int, help="HTTP threads")
    a("--data-dir", dest="data_dir")
    a("--database-url", dest="database_url", help="sqlite:///file or postgresql://user@host/db")
    a("--media-root", dest="media_root", help="directory below which file:// URIs are allowed")
    a("--jobs", type=int, help="async jobs run at once by this process")
    a("--sync-concurrency", dest="sync_concurrency", type=int)
    a("--lease-seconds", dest="lease_seconds", type=float)
    a("--max-attempts", dest="max_attempts", type=int)
    a("--ssrf-allow", dest="ssrf_allow", help="comma-separated CIDRs/hosts exempt from the SSRF guard")
    a("--auth-keys", dest="auth_keys", help="comma-separated AK:SK[:uid[:queue]]")
    a("--webhook-secret", dest="webhook_secret")
    a("--engine", help="module:callable that builds the engine")
    a("--decoders", type=int)
    a("--inference-workers", dest="inference_workers", type=int)
    a("--models-dir", dest="models_dir")
    a("--queue-url", dest="queue_url", help="(worker) use the queue API at this base URL")
    a("--access-key", dest="access_key")
    a("--secret-key", dest="secret_key")
    a("--log-level", dest="log_level")


def load_settings(args: argparse.Namespace | None = None,
                  env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Merge the layers (defaults < file < env < flags < ``overrides``) into resolved :class:`Settings`."""
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    cfg = (getattr(args, "config", None) if args is not None else None) or env.get("ARGUS_CONFIG")
    if cfg:
        merged.update(load_file(cfg))
    merged.update(from_env(env))
    if args is not None:
        for name in _FIELDS:
            value = getattr(args, name, None)
            if value is not None:
                merged[name] = _from_text(name, value) if isinstance(value, str) else value
    if overrides:
        merged.update({k: _from_text(k, v) if isinstance(v, str) else v for k, v in overrides.items()})
    try:
        settings = msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"bad settings: {exc}") from None
    return settings.resolve()


def parse_cli(argv: Sequence[str], prog: str, description: str) -> Settings:
    """Parse ``argv`` with the shared flags and return resolved settings."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    return load_settings(parser.parse_args(list(argv)))
