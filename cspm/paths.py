"""Where cspm keeps things: platformdirs, overridable by environment (tests, CI, operators)."""

from __future__ import annotations

import os
from pathlib import Path


def _dir(env: str, default: str) -> Path:
    """$env, else platformdirs' `default` folder (imported only then: ~2 ms of a warm run's start)."""
    value = os.environ.get(env)
    if value:
        path = Path(value).expanduser()
    else:
        import platformdirs

        path = Path(getattr(platformdirs, default)("cspm"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Blobs, compiled modules, index caches: safe to delete."""
    return _dir("CSPM_CACHE_DIR", "user_cache_dir")


def data_dir() -> Path:
    """Plug-in memory (kv): not safe to delete."""
    return _dir("CSPM_DATA_DIR", "user_data_dir")


def config_dir() -> Path:
    return _dir("CSPM_CONFIG_DIR", "user_config_dir")
