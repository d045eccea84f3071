"""Where cspm keeps things: platformdirs, overridable by environment (tests, CI, operators)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def _dir(env: str, default: str) -> Path:
    value = os.environ.get(env)
    path = Path(value).expanduser() if value else Path(default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Blobs, compiled modules, index caches: safe to delete."""
    return _dir("CSPM_CACHE_DIR", platformdirs.user_cache_dir("cspm"))


def data_dir() -> Path:
    """Plug-in memory (kv): not safe to delete."""
    return _dir("CSPM_DATA_DIR", platformdirs.user_data_dir("cspm"))


def config_dir() -> Path:
    return _dir("CSPM_CONFIG_DIR", platformdirs.user_config_dir("cspm"))
