"""Per-frame latent codes (generative latent optimisation, as Nerfies' and HyperNeRF's warp,
appearance and ambient codes), indexed by time.

The releases index codes by the `warp_id` / `appearance_id` of `metadata.json`, one per frame;
nerfkit's scenes carry the frames' times instead (`SceneMeta.train_times`, `Rays.time`), so
there is one code per distinct training time (frames with the same time, such as the two
cameras of a validation rig, share it, as they share the warp id in the Nerfies captures).

A ray whose time is not a training time (D-NeRF's test frames, render paths) gets the linear
interpolation of the codes of the two nearest training times, as the releases' `_encode_embed`
does for a (left id, right id, progression) triple (google/hypernerf `hypernerf/models.py`);
times before the first (after the last) training time get the first (last) code. The codes
start as U[0, 0.05) draws, the releases' GLOEmbed initialiser.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

GLO_INIT_SCALE = 0.05
"""Codes start uniform in [0, 0.05) (GLOEmbed's `nn.initializers.uniform(scale=0.05)`)."""


class LatentCodes(nn.Module):
    """One learned code of `dims` numbers per distinct training time."""

    def __init__(
        self, times: Sequence[float], dims: int, init_scale: float = GLO_INIT_SCALE
    ) -> None:
        super().__init__()
        unique = sorted({float(t) for t in times}) or [0.0]
        self.register_buffer("times", torch.tensor(unique, dtype=torch.float32))
        self.table = nn.Parameter(torch.rand(len(unique), dims) * init_scale)

    @property
    def num_codes(self) -> int:
        return self.table.shape[0]

    def forward(self, time: Tensor | None, count: int) -> Tensor:
        """The codes of `count` rays.

        Args:
            time: [R] the rays' times (R = count), or None (a static view: the first code).
        Returns:
            [R, dims]: the code of the training time equal to each ray's time, else the linear
            interpolation of its two neighbours' codes.
        """
        if time is None or self.num_codes == 1:
            return self.table[:1].expand(count, -1)
        times = self.times
        t = time.to(times)
        hi = torch.searchsorted(times, t).clamp(
            1, self.num_codes - 1
        )  # times[hi-1] < t <= times[hi]
        lo = hi - 1
        w = ((t - times[lo]) / (times[hi] - times[lo])).clamp(0.0, 1.0)[:, None]
        # (1 - w) a + w b is exactly b at w = 1 and exactly a at w = 0
        return (1.0 - w) * self.table[lo] + w * self.table[hi]

    def random(self, count: int) -> Tensor:
        """`count` codes of training frames drawn at random (with replacement). [count, dims]"""
        idx = torch.randint(self.num_codes, (count,), device=self.table.device)
        return self.table[idx]
