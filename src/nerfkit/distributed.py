"""Training across processes: `torchrun ... -m nerfkit train ...` (docs/distributed.md).

Data parallelism with exact equivalence: every rank draws the same global batch of rays from the
one seeded generator and keeps its own contiguous slice (`shard`), the method's per-ray random
draws are taken for the whole global batch and sliced the same way (`global_batch_draws`), and
the gradients are averaged over the ranks in one coalesced all-reduce (`average_gradients`), so N
ranks compute what one process computes on the global batch (up to the order of float sums).

This module is a leaf (torch and `nerfkit.errors` only): methods may call its collectives (the
`grid` method gathers the surface points it fits its box to). Outside torchrun, or before
`process_group`, every helper is the single-process identity (rank 0 of 1, nothing to reduce).

Collectives that fail (a rank exited, the network failed, or a rank waited longer than the
process group's timeout) raise `DistributedError`, a one-line `NerfkitError`, instead of hanging.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.overrides import TorchFunctionMode

from nerfkit.errors import NerfkitError

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What torchrun sets for each worker (and what a manual launch must set)."""

BUCKET_BYTES = 32 * 2**20
"""Gradients are all-reduced in flat buffers of about this size (bounded extra memory)."""


class DistributedError(NerfkitError):
    """A collective failed: a rank exited or stopped answering within the timeout."""


@dataclass(frozen=True)
class DistEnv:
    """One worker's place in a torchrun job (from its environment variables)."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int


def detect_env(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The torchrun environment of this process, or None when it was not launched by torchrun
    (no WORLD_SIZE). NerfkitError naming the variable when one is missing or malformed."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return None
    values: dict[str, int | str] = {}
    for name in ENV_VARS:
        raw = env.get(name)
        if raw is None or raw == "":
            if name == "LOCAL_RANK":
                raw = env.get("RANK", "")
            else:
                raise NerfkitError(
                    f"WORLD_SIZE is set but {name} is not: launch with torchrun, which sets "
                    f"{', '.join(ENV_VARS)} (or set them all)"
                )
        if name == "MASTER_ADDR":
            values[name] = raw
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            raise NerfkitError(f"{name}={raw!r} is not an integer (torchrun sets it)") from None
    e = DistEnv(
        rank=int(values["RANK"]),
        world_size=int(values["WORLD_SIZE"]),
        local_rank=int(values["LOCAL_RANK"]),
        master_addr=str(values["MASTER_ADDR"]),
        master_port=int(values["MASTER_PORT"]),
    )
    if e.world_size < 1 or not 0 <= e.rank < e.world_size:
        raise NerfkitError(f"RANK={e.rank} is not in [0, WORLD_SIZE={e.world_size})")
    return e


def is_active() -> bool:
    """True inside `process_group` (a torch.distributed group is initialised)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    """Number of ranks (1 outside a process group)."""
    return dist.get_world_size() if is_active() else 1


def is_main_process() -> bool:
    """True on rank 0, the one that writes files, logs, prints progress and serves the viewer."""
    return rank() == 0


@contextmanager
def process_group(device: torch.device, timeout_s: float) -> Iterator[torch.device]:
    """Join the torchrun job this process belongs to (if any) for the duration of the block.

    Yields the device this rank trains on: `device`, or for CUDA the GPU `cuda:LOCAL_RANK`.
    The backend is gloo for CPU tensors and NCCL for CUDA ones; `timeout_s` bounds how long a
    rank waits for the others (rendezvous and every collective) before it fails with an error.
    Outside torchrun this yields `device` and does nothing else.
    """
    env = detect_env()
    if env is None or is_active():
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", env.local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    with _collective("joining the process group", env.rank, env.world_size):
        dist.init_process_group(
            backend,
            init_method="env://",  # MASTER_ADDR, MASTER_PORT (or torchrun's store)
            rank=env.rank,
            world_size=env.world_size,
            timeout=timedelta(seconds=timeout_s),
        )
    try:
        yield device
        # every rank waits here until rank 0 has written its last files (the final validation
        # and checkpoint), so no rank tears its connections down while another still uses the
        # group: a rank that left early was once seen to abort in gloo ("terminate called
        # without an active exception") on a loaded CI machine
        with _collective("waiting for the other ranks to finish"):
            dist.barrier()
    finally:
        dist.destroy_process_group()


@contextmanager
def _collective(what: str, r: int | None = None, w: int | None = None) -> Iterator[None]:
    """Turn a failed collective into a one-line DistributedError naming the rank and the step."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as e:  # gloo/NCCL errors (a peer's socket closed), timeouts, DistError
        r = rank() if r is None else r
        w = world_size() if w is None else w
        detail = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        detail = re.sub(r"^\[[^\]]*\]\s*", "", detail).split(". ")[0] or type(e).__name__
        raise DistributedError(
            f"rank {r} of {w}: {what} failed ({detail}); another rank has probably exited "
            "(see its output) or stopped answering within --dist-timeout"
        ) from None


def shard(count: int, rank: int, world: int) -> slice:
    """Rank `rank`'s contiguous part of `count` items split over `world` ranks as evenly as
    possible (the first count % world ranks get one item more); the parts in rank order tile
    range(count)."""
    base, extra = divmod(count, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


# -- the method's per-ray random draws ----------------------------------------------------------

_DRAW_FUNCS = {
    torch.rand,
    torch.randn,
    torch.randint,
    torch.rand_like,
    torch.randn_like,
    torch.randint_like,
    Tensor.uniform_,
    Tensor.normal_,
}


def _size_arg(func: object, args: tuple, kwargs: dict) -> tuple[int, tuple[int, ...]] | None:
    """(position, size) of the size argument of a factory draw (`torch.rand(2, 3)`,
    `torch.rand((2, 3))`, `torch.randint(lo, hi, (n,))`); position -1: varargs ints,
    -2: the `size` keyword. None when there is none."""
    if "size" in kwargs:
        return -2, tuple(kwargs["size"])
    if func is torch.randint:
        for i, a in enumerate(args):
            if isinstance(a, tuple | list | torch.Size):
                return i, tuple(a)
        return None
    if args and isinstance(args[0], tuple | list | torch.Size):
        return 0, tuple(args[0])
    if args and all(isinstance(a, int) for a in args):
        return -1, tuple(args)
    return None


class _GlobalBatchDraws(TorchFunctionMode):
    """See `global_batch_draws`."""

    def __init__(self, part: slice, total: int) -> None:
        super().__init__()
        self.part, self.total = part, total
        self.local = part.stop - part.start

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = dict(kwargs or {})
        if func not in _DRAW_FUNCS:
            return func(*args, **kwargs)
        if func in (Tensor.uniform_, Tensor.normal_):
            x = args[0]
            if x.dim() >= 1 and x.shape[0] == self.local:
                full = x.new_empty((self.total, *x.shape[1:]))
                func(full, *args[1:], **kwargs)
                return x.copy_(full[self.part])
            return func(*args, **kwargs)
        if func in (torch.rand_like, torch.randn_like, torch.randint_like):
            x = args[0]
            if x.dim() >= 1 and x.shape[0] == self.local:
                full = x.new_empty((self.total, *x.shape[1:]))
                return func(full, *args[1:], **kwargs)[self.part]
            return func(*args, **kwargs)
        found = _size_arg(func, args, kwargs)
        if found is None or not found[1] or found[1][0] != self.local:
            return func(*args, **kwargs)
        pos, size = found
        size = (self.total, *size[1:])
        if pos == -2:
            kwargs["size"] = size
        elif pos == -1:
            args = size
        else:
            args = (*args[:pos], size, *args[pos + 1 :])
        return func(*args, **kwargs)[self.part]


def global_batch_draws(part: slice, total: int) -> AbstractContextManager:
    """While active, every torch random draw with one row per ray of this rank's slice
    (`torch.rand/randn/randint`, their `_like` forms, `Tensor.uniform_/normal_`, whose first
    dimension is part's length) is drawn for all `total` rays of the global batch and sliced
    to `part`, so each ray gets the number one process would have drawn for it, and every
    rank's torch generator advances exactly as that process's. Draws of another first
    dimension (e.g. random voxels of a regulariser) are drawn whole, the same on every rank.

    Limits: a draw of another size per ray (e.g. per packed sample) or made outside torch's
    functions (dropout) still works but is no longer the one process's; a non-per-ray draw
    whose first dimension happens to equal part's length is sliced like a per-ray one.
    A no-op (nullcontext) when `part` is the whole batch.
    """
    if part.stop - part.start == total:
        return nullcontext()
    return _GlobalBatchDraws(part, total)


# -- collectives ------------------------------------------------------------------------------


def _buckets(tensors: Sequence[Tensor], limit: int) -> Iterator[list[int]]:
    """Indices of `tensors` grouped into runs of one device and dtype of about `limit` bytes."""
    group: list[int] = []
    size = 0
    for i, t in enumerate(tensors):
        nbytes = t.numel() * t.element_size()
        if group and (
            size + nbytes > limit
            or (t.device, t.dtype) != (tensors[group[0]].device, tensors[group[0]].dtype)
        ):
            yield group
            group, size = [], 0
        group.append(i)
        size += nbytes
    if group:
        yield group


def all_reduce_mean_(
    tensors: Sequence[Tensor], bucket_bytes: int = BUCKET_BYTES, group: object = None
) -> None:
    """Replace each tensor by its mean over the ranks (of `group`, default all), in place; the
    tensors are flattened into buckets of about `bucket_bytes` (one all-reduce each, not one
    per tensor)."""
    w = world_size() if group is None else dist.get_world_size(group)
    if w == 1 or not tensors:
        return
    for bucket in _buckets(tensors, bucket_bytes):
        parts = [tensors[i] for i in bucket]
        flat = _flatten_dense_tensors(parts)
        with _collective("averaging gradients (all-reduce)"):
            dist.all_reduce(flat, group=group)
        flat /= w
        for t, mean in zip(parts, _unflatten_dense_tensors(flat, parts)):
            t.copy_(mean)


def average_gradients(params: Iterable[Tensor], stats: Tensor | None = None) -> Tensor | None:
    """Replace each parameter's gradient by its mean over the ranks (a rank without one
    counts zeros; a parameter without a gradient on every rank keeps none, so the optimiser
    skips it as one process would). `stats` [K] (e.g. weighted losses) rides along; returns its
    mean over the ranks (None without stats)."""
    params = [p for p in params if p.requires_grad]
    if world_size() == 1:
        return stats
    dev = params[0].device if params else torch.device("cpu")
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=dev)
    meta = torch.cat([has, torch.zeros(0, device=dev) if stats is None else stats.float()])
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
    all_reduce_mean_([*grads, meta])
    for p, g, h in zip(params, grads, meta[: len(params)].tolist()):
        p.grad = g if h > 0 else None
    return None if stats is None else meta[len(params) :]


def broadcast_values(values: Sequence[float], src: int = 0) -> list[float]:
    """Rank `src`'s numbers (float64), on every rank: e.g. its clock, so that time-based
    schedules and the stop decision are the same everywhere."""
    if world_size() == 1:
        return [float(v) for v in values]
    t = torch.tensor(list(values), dtype=torch.float64)
    with _collective("receiving rank 0's clock (broadcast)"):
        dist.broadcast(t, src)
    return t.tolist()


def broadcast_object(obj: object, src: int = 0) -> object:
    """Rank `src`'s picklable `obj`, on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    with _collective("broadcasting from rank 0"):
        dist.broadcast_object_list(box, src, device=torch.device("cpu"))
    return box[0]


def all_gather_objects(obj: object) -> list:
    """Every rank's picklable `obj`, in rank order."""
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    with _collective("exchanging state (all-gather)"):
        dist.all_gather_object(out, obj)
    return out


def all_gather_rows(t: Tensor) -> Tensor:
    """Every rank's rows of `t` [n_k, ...] concatenated in rank order [sum n_k, ...] (the rows
    one process would hold when each rank held a contiguous slice of its batch)."""
    w = world_size()
    if w == 1:
        return t
    n = torch.tensor([t.shape[0]], device=t.device)
    counts = [torch.zeros_like(n) for _ in range(w)]
    with _collective("gathering rows (all-gather)"):
        dist.all_gather(counts, n)
    sizes = [int(c) for c in counts]
    padded = t.new_zeros((max(sizes), *t.shape[1:]))
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(w)]
    with _collective("gathering rows (all-gather)"):
        dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


@contextmanager
def agreed(what: str) -> Iterator[None]:
    """Run a block on every rank and fail on all of them when it fails on any: the error of the
    lowest failing rank is raised everywhere (a NerfkitError with its message), instead of the
    others waiting at their next collective until the timeout."""
    if world_size() == 1:
        yield
        return
    error: BaseException | None = None
    try:
        yield
    except Exception as e:  # noqa: BLE001 - re-raised below, after the others have been told
        error = e
    messages = all_gather_objects(None if error is None else str(error) or type(error).__name__)
    if error is not None:
        raise error
    for r, msg in enumerate(messages):
        if msg is not None:
            raise NerfkitError(f"{what} failed on rank {r}: {msg}")


def check_same(value: str, what: str) -> None:
    """NerfkitError on every rank unless all ranks pass the same `value` (e.g. a digest of
    their config and model: ranks launched with different flags or data must not train)."""
    values = all_gather_objects(value)
    if any(v != values[0] for v in values):
        differ = [r for r, v in enumerate(values) if v != values[0]]
        raise NerfkitError(
            f"ranks {differ} have a different {what} than rank 0: launch every rank with the "
            "same command, flags and data"
        )


__all__ = [
    "DistEnv",
    "DistributedError",
    "agreed",
    "all_gather_objects",
    "all_gather_rows",
    "all_reduce_mean_",
    "average_gradients",
    "broadcast_object",
    "broadcast_values",
    "check_same",
    "detect_env",
    "global_batch_draws",
    "is_active",
    "is_main_process",
    "process_group",
    "rank",
    "shard",
    "world_size",
]
