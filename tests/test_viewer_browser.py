"""The viewer end to end in a real headless browser (Debian's chromium, driven by playwright).

The test opens the viewer's page, puts the browser's camera on a test view's pose, takes back
the frame the browser drew (viser's `get_render`) and compares it with `nerfkit eval`'s image of
the same view. WebGL in headless chromium runs on SwiftShader (software). Skips, with the reason,
where viser, playwright or a chromium binary is missing (.ci/run installs chromium with apt-get).

`python tests/test_viewer_browser.py RUN OUT.png` takes the README's screenshot of a run instead.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

CHROMIUM_ARGS = [
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--no-sandbox",
    "--disable-dev-shm-usage",
]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """A chromium binary: $NERFKIT_CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    env = os.environ.get("NERFKIT_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _requirements() -> str:
    """The executable path of chromium; skips the test where something is missing."""
    for module in ("viser", "playwright"):
        try:
            __import__(module)
        except ImportError:
            pytest.skip(f"{module} not installed (pip install -e '.[test,viewer]')")
    exe = find_chromium()
    if exe is None:
        pytest.skip("no chromium binary (apt-get install chromium; or set NERFKIT_CHROMIUM)")
    return exe


@contextmanager
def browser_page(exe: str, url: str, size: tuple[int, int]) -> Iterator[object]:
    """A headless chromium page (viewport width x height) showing `url`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto(url)
            yield page
        finally:
            browser.close()


def wait_for(cond, timeout: float, what: str) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _client_ready(viewer) -> object | None:  # noqa: ANN001
    """The first connected client whose camera state has arrived and whose render loop runs
    (else None)."""
    for client in viewer.server.get_clients().values():
        if client.client_id not in viewer.loops:
            continue
        try:
            client.camera.position  # noqa: B018 - raises until the browser sent its camera
        except AssertionError:
            continue
        return client
    return None


def settled_frame(viewer, client, height: int, timeout: float = 20.0) -> None:  # noqa: ANN001
    """Wait until the client's render loop has shown a full-resolution frame of the camera as
    it is now (and the browser had a moment to decode it)."""
    loop = viewer.loops[client.client_id]
    wait_for(lambda: loop.idle(height), timeout, "the viewer's full-resolution frame")
    time.sleep(0.5)  # the browser decodes the PNG asynchronously


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium binary (the test skips, before any training, where anything is missing)."""
    return _requirements()


@pytest.fixture(scope="module")
def trained(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny trained run and `nerfkit eval`'s render of its first test view."""
    from helpers import run_cli

    from nerfkit.data.synthetic import generate_scene

    root = tmp_path_factory.mktemp("viewer_browser")
    data = generate_scene(root / "scene", resolution=32, n_train=6, n_val=1, n_test=1,
                          supersample=1)  # fmt: skip
    run = root / "run"
    # a coarse grid after a few steps: far from converged, but a picture with structure
    args = ["train", "--data", data, "--output", run, "--max-steps", 30, "--batch-rays", 512,
            "--lr", 0.05, "--val-every", 0, "--no-progress", "--method", "grid", "--device", "cpu",
            "--grid.num-voxels-final", 32**3, "--grid.fit-box-step", -1]  # fmt: skip
    assert run_cli(args) == 0
    assert run_cli(["eval", run, "--output", root / "eval", "--device", "cpu"]) == 0
    view = json.loads((root / "eval" / "metrics.json").read_text())["views"][0]["name"]
    return {"run": run, "data": data, "eval": iio.imread(root / "eval" / f"{view}.png")}


def test_the_browser_draws_what_eval_renders(chromium: str, trained: dict, tmp_path: Path) -> None:
    exe = chromium
    from helpers import run_cli

    from nerfkit.data import load_scene
    from nerfkit.viewer.camera import c2w_to_viser, fov_y_of
    from nerfkit.viewer.server import view_run

    test = load_scene(trained["data"]).split("test")
    size = test.cameras.height
    assert test.cameras.width == size  # a square view: the browser's canvas is square too
    wxyz, position = c2w_to_viser(test.cameras.c2w[0].numpy())
    fov = fov_y_of(float(test.cameras.fy[0]), size)

    viewer = view_run(trained["run"], port=0, device="cpu", block=False)
    viewer.image_format = "png"  # exact pixels
    viewer.set_cameras_visible(False)
    try:
        with browser_page(exe, viewer.url, (400, 400)):
            wait_for(lambda: _client_ready(viewer) is not None, 20, "the browser to connect")
            client = _client_ready(viewer)
            loop = viewer.loops[client.client_id]
            loop.max_height = size  # full resolution = the test image's
            settled_frame(viewer, client, size)
            before = client.get_render(size, size, transport_format="png", timeout=20)
            with client.atomic():
                client.camera.fov = fov
                client.camera.wxyz = wxyz
                client.camera.position = position
            settled_frame(viewer, client, size)
            np.testing.assert_allclose(client.camera.position, position, atol=1e-5)
            drawn = client.get_render(size, size, transport_format="png", timeout=20)
            # the camera-path editor, as its buttons drive it: two keyframes -> a file
            viewer.add_keyframe(client)
            viewer.look_through(client, 1)  # what a click on training camera 1 does
            viewer.add_keyframe(client)
            viewer.path_file.value = str(tmp_path / "path.json")
            viewer.seconds.value, viewer.fps.value = 0.2, 10
            command = viewer.save_path(client)
    finally:
        viewer.close()
    from nerfkit.camera_path import load_camera_path
    from nerfkit.viewer.path_editor import render_command

    assert command == render_command(trained["run"], tmp_path / "path.json")
    assert command in viewer.command.content
    cp = load_camera_path(tmp_path / "path.json")
    assert len(cp) == 2
    torch.testing.assert_close(cp.c2w[0].float(), test.cameras.c2w[0], atol=1e-4, rtol=0)
    train_c2w = torch.tensor(viewer.meta.train_c2w[1])
    torch.testing.assert_close(cp.c2w[1].float(), train_c2w, atol=1e-4, rtol=0)
    video = tmp_path / "path.mp4"
    assert run_cli(["render", trained["run"], "--path", tmp_path / "path.json", "--output", video,
                    "--device", "cpu"]) == 0  # fmt: skip
    assert video.stat().st_size > 0
    expected = trained["eval"]
    assert expected.std() > 10.0  # a picture, not a flat background
    psnr = _psnr(drawn[..., :3], expected)
    assert psnr > 40.0, f"browser frame vs eval image: PSNR {psnr:.1f} dB"
    # the viewer's start view is another picture: the browser did move to the test view
    assert _psnr(before[..., :3], expected) < 25.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 images."""
    from nerfkit.metrics import psnr

    return psnr(torch.from_numpy(a / 255.0), torch.from_numpy(b / 255.0))


def screenshot(run: Path, out: Path, size: tuple[int, int] = (1200, 720)) -> Path:
    """A screenshot of the viewer showing `run` (the README's picture)."""
    exe = find_chromium()
    if exe is None:
        raise SystemExit("no chromium binary found")
    from nerfkit.viewer.server import view_run

    viewer = view_run(run, port=0, device="auto", block=False)
    try:
        with browser_page(exe, viewer.url, size) as page:
            wait_for(lambda: _client_ready(viewer) is not None, 30, "the browser to connect")
            client = _client_ready(viewer)  # at the start view: behind training camera 0
            settled_frame(viewer, client, min(size[1], 1080), timeout=300)
            for button in page.locator(".mantine-Notification-closeButton").all():  # type: ignore
                button.click()  # the "software WebGL" notice
            time.sleep(0.5)
            page.screenshot(path=str(out))  # type: ignore[attr-defined]
    finally:
        viewer.close()
    return out


if __name__ == "__main__":
    print(screenshot(Path(sys.argv[1]), Path(sys.argv[2])))
