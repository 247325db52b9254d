"""nerfkit.atomic: files and folders appear whole or not at all; a crash's leftovers are found."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from nerfkit.atomic import (
    atomic_path,
    install_folder,
    orphaned_temp_files,
    remove_orphaned_temp_files,
    save_json_atomic,
    staging_folder,
    temp_path,
    write_text_atomic,
)


def test_temp_path_is_hidden_per_process_and_keeps_the_suffix(tmp_path: Path) -> None:
    tmp = temp_path(tmp_path / "frame.png")
    assert tmp.parent == tmp_path
    assert tmp.name == f".frame.png.tmp{os.getpid()}.png"


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_failure(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"], "temp file left behind"
    with atomic_path(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_write_text_and_json(tmp_path: Path) -> None:
    save_json_atomic(tmp_path / "m.json", {"psnr": 30.5, "views": [1, 2]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"psnr": 30.5, "views": [1, 2]}
    write_text_atomic(tmp_path / "t.csv", "a,b\r\n1,2\r\n")
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\r\n1,2\r\n"  # line ends as given
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "t.csv"]


def test_orphans_are_recognised_by_name(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.pt"
    names = [
        "checkpoint.pt",
        ".checkpoint.pt.tmp123",  # an orphan of an earlier version's naming
        ".checkpoint.pt.tmp4567.pt",  # an orphan of temp_path's naming
        ".checkpoint.pt.tmpabc",  # not a pid: not ours
        ".other.pt.tmp123.pt",  # another file's temp
        "checkpoint.pt.tmp123",  # not hidden
    ]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    want = [tmp_path / ".checkpoint.pt.tmp123", tmp_path / ".checkpoint.pt.tmp4567.pt"]
    assert orphaned_temp_files(target) == want
    assert remove_orphaned_temp_files(target) == want
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(names) - {p.name for p in want})
    assert orphaned_temp_files(tmp_path / "missing" / "checkpoint.pt") == []


def test_staging_folder_is_beside_ordinary_and_removed_when_not_installed(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "out"
    with pytest.raises(RuntimeError), staging_folder(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.name.startswith(".out.tmp-")
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o755
        (tmp / "f.txt").write_text("x")
        raise RuntimeError("failed half way")
    assert list(dest.parent.iterdir()) == []


def test_install_folder_creates_and_replaces(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    for content in ("first", "second"):
        with staging_folder(dest) as tmp:
            (tmp / "f.txt").write_text(content)
            install_folder(tmp, dest)
        assert (dest / "f.txt").read_text() == content
        assert [p.name for p in tmp_path.iterdir()] == ["out"], "leftover folders"


def test_install_folder_failure_keeps_the_old_folder(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(OSError):
        install_folder(tmp_path / "never_built", dest)
    assert (dest / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_media_writers_leave_no_temp_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import imageio.v3 as iio

    from nerfkit.media import write_png

    write_png(tmp_path / "a.png", np.zeros((2, 2, 3), np.float32))
    before = (tmp_path / "a.png").read_bytes()

    def disk_full(path: Path, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"half a png")
        raise OSError("No space left on device")

    monkeypatch.setattr(iio, "imwrite", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_png(tmp_path / "a.png", np.ones((2, 2, 3), np.float32))
    assert (tmp_path / "a.png").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
