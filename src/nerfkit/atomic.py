"""Atomic writes: build beside the target, then rename into place.

A reader (or a crash) never sees half a file or half a folder: files are written to a hidden
temporary name beside their target and renamed over it (`os.replace`, atomic on POSIX and
Windows within one filesystem); folders are built in a hidden temporary folder beside theirs and
renamed into place.

Temporary names are recognisable, so what a crash orphans can be found and removed:
a file `NAME` is written as `.NAME.tmp<pid><suffix>` (the target's suffix again at the end, for
writers that choose the format by extension), a folder `NAME` is built in `.NAME.tmp-<random>`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def temp_path(path: Path) -> Path:
    """The hidden per-process temporary name of `path`: `.NAME.tmp<pid><suffix>` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield the temporary name of `path` to write to; on success rename it to `path`.

    If the body raises, the temporary file is removed and `path` keeps its old content (or
    stays absent). The parent folder must exist.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically, UTF-8, line ends as given (no translation)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return Path(path)


def save_json_atomic(path: Path, obj: object) -> Path:
    """Write `obj` as indented JSON to `path` atomically. Returns path."""
    return write_text_atomic(path, json.dumps(obj, indent=2))


def orphaned_temp_files(path: Path) -> list[Path]:
    """Temporary files of `path` left beside it (`.NAME.tmp<pid>[suffix]`), sorted.

    Only a caller sure that no other process is writing `path` now (e.g. one holding the run
    folder's lock) may treat them as orphans of a crash.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.tmp\d+(?:{re.escape(path.suffix)})?")
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file())


def remove_orphaned_temp_files(path: Path) -> list[Path]:
    """Delete the temporary files of `path` a crash left beside it; returns the deleted paths.

    Call only while no other process can be writing `path` (see `orphaned_temp_files`).
    """
    removed = []
    for p in orphaned_temp_files(path):
        with suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


@contextmanager
def staging_folder(dest: Path) -> Iterator[Path]:
    """Yield a new empty folder `.NAME.tmp-<random>` beside `dest` to build it in.

    Beside `dest` means on its filesystem, so `install_folder` can rename it into place. The
    folder gets mode 0755 (an ordinary folder, not mkdtemp's private 0700). Whatever is still
    there on exit (not installed: an error, or a lost race) is removed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        os.chmod(tmp, 0o755)
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def install_folder(tmp: Path, dest: Path) -> None:
    """Rename the finished folder `tmp` to `dest`, replacing whatever folder `dest` was.

    An existing `dest` is first renamed aside (into a hidden `.NAME.old-<random>` folder beside
    it) and deleted once `tmp` is in place; if renaming `tmp` fails, the old `dest` is put back
    where possible and the OSError is raised. `tmp` and `dest` must be on one filesystem.
    """
    tmp, dest = Path(tmp), Path(dest)
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.rename(dest, old / dest.name)
    try:
        os.rename(tmp, dest)
    except OSError:
        if old is not None:
            with suppress(OSError):  # e.g. another writer installed its own dest meanwhile
                os.rename(old / dest.name, dest)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


__all__ = [
    "atomic_path",
    "install_folder",
    "orphaned_temp_files",
    "remove_orphaned_temp_files",
    "save_json_atomic",
    "staging_folder",
    "temp_path",
    "write_text_atomic",
]
