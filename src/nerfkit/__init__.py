"""nerfkit: Neural Radiance Fields you can train, inspect and render on a laptop CPU."""

__version__ = "0.1.0"
