"""Fuzz the format loaders of cspm/formats/: app.yaml, plugin.yaml, app.lock, user config, index lines.

The first byte picks the loader, the rest is the file. Each is fed as the real entry point reads it
(the loaders of files read them from disk, here a private temp folder). Expected: `FormatError` from
the YAML loaders (it names file, line and field), `BadIndexLine` from an index line. Anything else
is a crash: the CLI would print it as an internal error.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

FOLDER = Path(tempfile.mkdtemp(prefix="cspm-fuzz-formats-"))
os.environ["CSPM_CONFIG_DIR"] = str(FOLDER / "config")  # never the user's own
os.environ["CSPM_CACHE_DIR"] = str(FOLDER / "cache")
os.environ["CSPM_DATA_DIR"] = str(FOLDER / "data")

with atheris.instrument_imports(include=["cspm"]):
    from cspm.errors import FormatError
    from cspm.formats import app, index_line, lock, manifest, userconfig

LOADERS = ["app.yaml", "plugin.yaml", "app.lock", "config.yaml", "index line"]


def _write(name: str, body: bytes) -> Path:
    path = FOLDER / name
    path.write_bytes(body)
    return path


def test_one_input(data: bytes) -> None:
    if not data:
        return
    which, body = LOADERS[data[0] % len(LOADERS)], data[1:]
    try:
        if which == "app.yaml":
            app.load(_write("app.yaml", body))
        elif which == "plugin.yaml":
            manifest.load(_write("plugin.yaml", body))
        elif which == "app.lock":
            loaded = lock.load(_write("app.lock", body))
            lock.dump(loaded)  # what was accepted can be written back
        elif which == "config.yaml":
            userconfig.load(_write("config.yaml", body))
        else:
            index_line.parse_file(body, "test/echo", "fuzz")  # collects bad lines, never raises
            try:
                entry = index_line.parse_line(body, "test/echo", "fuzz")
            except index_line.BadIndexLine:
                return
            again = index_line.parse_line(index_line.to_line(entry.raw), "test/echo", "fuzz")
            assert again == entry, "an accepted line does not survive its canonical form"
    except FormatError:
        pass


if __name__ == "__main__":
    try:
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
    finally:
        shutil.rmtree(FOLDER, ignore_errors=True)
