"""CPU feature detection and the `auto` precision choice (nerfkit.perf)."""

from __future__ import annotations

import pytest
import torch

from nerfkit import perf

SPR = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 avx512_fp16\n"


def test_amx_is_read_from_the_flags_line():
    assert perf.cpu_has_amx(SPR)
    assert not perf.cpu_has_amx(ZEN4)  # AVX-512 BF16 alone is not AMX
    assert not perf.cpu_has_amx("model name\t: amx_bf16 in a name, not a flag\n")
    assert not perf.cpu_has_amx("")


@pytest.mark.parametrize("amx", [True, False])
def test_auto_precision_is_bf16_only_on_an_amx_cpu(monkeypatch, amx):
    monkeypatch.setattr(perf, "_this_cpu_has_amx", lambda: amx)
    assert perf.resolve_precision("auto", "cpu") == ("bf16" if amx else "fp32")
    assert perf.resolve_precision("auto", torch.device("cuda")) == "fp32"  # not measured there
    for explicit in ("fp32", "bf16"):  # an explicit choice is kept on every machine
        assert perf.resolve_precision(explicit, "cpu") == explicit
