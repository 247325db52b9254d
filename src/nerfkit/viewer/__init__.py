"""The live viewer: `nerfkit view RUN` and `nerfkit train ... --viewer` (viser, in a browser).

`camera` (viser <-> nerfkit cameras), `render_loop` (the render thread and its lock) and
`path_editor` (keyframes -> a nerfstudio camera path) need only torch and numpy; `server` needs
the optional `viewer` extra (`pip install 'nerfkit[viewer]'`), imported only when a viewer starts.
"""

from __future__ import annotations

from types import ModuleType

from nerfkit.errors import NerfkitError

INSTALL_HINT = "pip install 'nerfkit[viewer]'"


def require_viser() -> ModuleType:
    """The `viser` module, or a one-line NerfkitError saying how to install it."""
    try:
        import viser
    except ImportError:
        raise NerfkitError(
            f"the viewer needs the optional package viser, which is not installed; {INSTALL_HINT}"
        ) from None
    return viser
