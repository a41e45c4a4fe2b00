"""Settings layering: defaults < file < environment < flags."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from argus_http.config import KeyPair, add_arguments, load_settings


def flags(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_layers(tmp_path: Path) -> None:
    cfg = tmp_path / "argus.toml"
    cfg.write_text('port = 7000\nthreads = 6\nssrf_allow = ["10.0.0.0/8"]\n'
                   '[[auth_keys]]\naccess_key = "a"\nsecret_key = "b"\nuid = "9"\n')
    env = {"ARGUS_CONFIG": str(cfg), "ARGUS_THREADS": "12", "ARGUS_DATABASE_URL": "postgresql://u@h/db",
           "ARGUS_CALLBACK_SCHEDULE": "1,2,3"}
    s = load_settings(flags("--port", "7100", "--data-dir", str(tmp_path / "d")), env=env)
    assert s.port == 7100 and s.threads == 12 and s.ssrf_allow == ["10.0.0.0/8"]
    assert s.auth_keys == [KeyPair("a", "b", "9")] and s.database_url == "postgresql://u@h/db"
    assert s.callback_schedule == [1.0, 2.0, 3.0]
    assert s.save_store == str((tmp_path / "d" / "frames").resolve())


def test_defaults_and_derived(tmp_path: Path) -> None:
    s = load_settings(flags("--data-dir", str(tmp_path)), env={})
    assert s.host == "127.0.0.1" and s.max_body == 1024 * 1024 and s.max_attempts == 3 and s.lease_seconds == 30
    assert s.callback_timeout == 10 and s.callback_schedule[:3] == [5, 30, 120] and s.callback_window == 86400
    assert s.database_url == f"sqlite:///{tmp_path.resolve()}/argus.db"
    assert not s.auth_enabled and s.media_root == ""
    s = load_settings(flags("--auth-keys", "ak:sk:7:queue,x:y"), env={})
    assert s.auth_keys == [KeyPair("ak", "sk", "7", True), KeyPair("x", "y", "", False)]


def test_bad_settings(tmp_path: Path) -> None:
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"prot": 1}))
    with pytest.raises(ValueError, match="unknown settings"):
        load_settings(flags("--config", str(bad)), env={})
    with pytest.raises(ValueError):
        load_settings(None, env={"ARGUS_PORT": "eighty"})
    with pytest.raises(ValueError):
        load_settings(None, env={"ARGUS_JOBS": "0"})
