"""Per-image appearance compensation: a learned affine colour transform for each training photo.

Real photos of one scene differ in exposure and white balance (auto-exposure, changing light);
a radiance field fit to all of them averages those differences into floaters and colour
shifts. Each training image i gets an affine map of the ray colour, c' = A_i c + b_i a (A_i a
3x3 matrix, b_i a colour scaled by the ray's opacity a so that the background is untouched),
started at the identity (A_i = I, b_i = 0): 12 parameters per photo, the cheapest model that
covers exposure (a scale), white balance (per-channel scales) and colour casts. It is learned
with the field; the field then models the scene under the photos' average appearance.

Views that are not training photos (held-out test views, render paths) have no transform of
their own; they get the average transform of the training photos, as nerfstudio's nerfacto does
with `use_average_appearance_embedding` (its default for evaluation). Metrics of held-out views
therefore measure the scene under the average appearance, not each photo's own exposure.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AppearanceAffine(nn.Module):
    """Per-image affine colour transforms (module docstring), identity at the start."""

    def __init__(self, num_images: int) -> None:
        super().__init__()
        self.matrix = nn.Parameter(torch.eye(3).repeat(num_images, 1, 1))
        self.offset = nn.Parameter(torch.zeros(num_images, 3))

    def forward(self, rgb: Tensor, acc: Tensor, camera: Tensor | None) -> Tensor:
        """Transformed ray colours.

        Args:
            rgb: [R, 3] composited colour of the scene (without the background); acc: [R]
                opacity; camera: [R] int64 training-image index of each ray, or None (views
                that are not training photos: the average transform).
        Returns:
            [R, 3] A rgb + b acc with each ray's (A, b).
        """
        if camera is None:
            a, b = self.matrix.mean(0), self.offset.mean(0)
            return rgb @ a.T + acc[:, None] * b
        a, b = self.matrix[camera], self.offset[camera]  # [R, 3, 3], [R, 3]
        return torch.einsum("rij,rj->ri", a, rgb) + acc[:, None] * b
