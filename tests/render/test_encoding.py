"""Positional encoding gamma(p) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.render.encoding import encoded_dim, positional_encoding


def test_exact_values_and_feature_order():
    # D = 2, L = 3, w = 1: (x, sin x, cos x, sin 2x, cos 2x, sin 4x, cos 4x), each block [x0, x1].
    x = torch.tensor([[0.5, -1.25]], dtype=torch.float64)
    s, c = math.sin, math.cos
    expected = [
        0.5, -1.25,
        s(0.5), s(-1.25), c(0.5), c(-1.25),
        s(1.0), s(-2.5), c(1.0), c(-2.5),
        s(2.0), s(-5.0), c(2.0), c(-5.0),
    ]  # fmt: skip
    out = positional_encoding(x, num_freqs=3)
    assert out.shape == (1, 14)
    torch.testing.assert_close(out[0], torch.tensor(expected, dtype=torch.float64))
    # a few of them written out by hand, in case math.sin and torch.sin agreed on something wrong
    assert out[0, 2].item() == pytest.approx(0.479425538604203, abs=1e-12)  # sin(0.5)
    assert out[0, 4].item() == pytest.approx(0.877582561890373, abs=1e-12)  # cos(0.5)
    assert out[0, 10].item() == pytest.approx(0.909297426825682, abs=1e-12)  # sin(2)


def test_include_pi_uses_pi_times_powers_of_two():
    # x = 0.5: sin(pi/2) = 1, cos(pi/2) = 0, sin(pi) = 0, cos(pi) = -1, sin(2pi) = 0, cos(2pi) = 1
    x = torch.tensor([0.5, 0.0], dtype=torch.float64)
    out = positional_encoding(x, num_freqs=3, include_input=False, include_pi=True)
    expected = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)


def test_include_input_false_drops_the_identity_block():
    x = torch.randn(5, 3)
    with_x = positional_encoding(x, 4, include_input=True)
    without = positional_encoding(x, 4, include_input=False)
    torch.testing.assert_close(with_x[..., :3], x)
    torch.testing.assert_close(with_x[..., 3:], without)


def test_zero_frequencies_is_identity():
    x = torch.randn(4, 7, 3)
    assert torch.equal(positional_encoding(x, 0), x)
    with pytest.raises(ValueError):
        positional_encoding(x, 0, include_input=False)


@pytest.mark.parametrize("include_input", [True, False])
@pytest.mark.parametrize("num_freqs", [1, 4, 10])
@pytest.mark.parametrize("in_dim", [1, 3])
def test_encoded_dim_matches_output(in_dim, num_freqs, include_input):
    x = torch.randn(2, 5, in_dim)
    out = positional_encoding(x, num_freqs, include_input=include_input)
    assert out.shape == (2, 5, encoded_dim(in_dim, num_freqs, include_input))
    assert encoded_dim(3, 10) == 63 and encoded_dim(3, 4) == 27  # the paper's widths
    assert encoded_dim(3, 0) == 3


def test_batch_shapes_and_dtype_preserved():
    x = torch.randn(3, 4, 3, dtype=torch.float64)
    out = positional_encoding(x, 2)
    assert out.dtype == torch.float64
    # every element encodes independently of the batch layout
    torch.testing.assert_close(out.reshape(12, -1), positional_encoding(x.reshape(12, 3), 2))
