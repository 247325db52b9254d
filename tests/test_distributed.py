"""Training across processes (nerfkit.distributed): two gloo ranks compute what one process
computes on the same global batch; a two-rank torchrun run trains, checkpoints, resumes and
evaluates; a rank that dies or hangs ends the others with a one-line error, not a hang."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from helpers import run_cli

from nerfkit import distributed
from nerfkit.config import TrainConfig
from nerfkit.data import load_scene
from nerfkit.data.synthetic import generate_scene
from nerfkit.errors import NerfkitError
from nerfkit.methods.grid import GridConfig
from nerfkit.methods.nerf import NeRFConfig
from nerfkit.run import CHECKPOINT_FILE, METRICS_FILE
from nerfkit.train import Trainer, train

TESTS = Path(__file__).resolve().parent
STEPS = 3


# -- pure helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "world"), [(10, 1), (10, 3), (7, 7), (4097, 2), (5, 4)])
def test_shards_tile_the_batch_evenly(count: int, world: int) -> None:
    parts = [distributed.shard(count, r, world) for r in range(world)]
    assert [i for p in parts for i in range(count)[p]] == list(range(count))
    sizes = [p.stop - p.start for p in parts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_torchrun_environment_is_detected_and_checked() -> None:
    assert distributed.detect_env({}) is None  # not under torchrun
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "node0"}
    assert distributed.detect_env({**env, "MASTER_PORT": "29500"}) == distributed.DistEnv(
        3, 4, 1, "node0", 29500
    )
    with pytest.raises(NerfkitError, match="MASTER_PORT"):
        distributed.detect_env(env)
    with pytest.raises(NerfkitError, match="RANK='x'"):
        distributed.detect_env({**env, "MASTER_PORT": "1", "RANK": "x"})
    with pytest.raises(NerfkitError, match=r"RANK=4 is not in \[0, WORLD_SIZE=4\)"):
        distributed.detect_env({**env, "MASTER_PORT": "1", "RANK": "4"})
    # outside a process group everything is the single process
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (
        0,
        1,
        True,
    )


def test_per_ray_draws_are_the_global_batchs_rows() -> None:
    """Inside global_batch_draws(part, total), a per-ray draw is part's rows of the draw one
    process makes for all `total` rays, and the generator ends where that process's does."""
    total, part = 10, slice(3, 7)
    x = torch.zeros(4, 2)

    def draws() -> list[torch.Tensor]:
        return [
            torch.rand(4, 5),
            torch.rand_like(x[:, 0]),
            torch.randn((4, 3)),
            torch.randn_like(x),
            torch.randint(0, 9, (4, 2)),
            torch.randint(5, size=(4,)),
            torch.zeros(4, 2).uniform_(),
            torch.zeros(4).normal_(),
            torch.randint(0, 100, (6,)),  # not per ray: drawn whole
        ]

    torch.manual_seed(1)
    with distributed.global_batch_draws(part, total):
        got = draws()
        after = torch.rand(1)
    torch.manual_seed(1)
    want = [
        torch.rand(10, 5)[part],
        torch.rand(10)[part],
        torch.randn(10, 3)[part],
        torch.randn(10, 2)[part],
        torch.randint(0, 9, (10, 2))[part],
        torch.randint(5, (10,))[part],
        torch.zeros(10, 2).uniform_()[part],
        torch.zeros(10).normal_()[part],
        torch.randint(0, 100, (6,)),
    ]
    assert torch.equal(after, torch.rand(1))
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)
    # the whole batch: nothing changes
    torch.manual_seed(1)
    with distributed.global_batch_draws(slice(0, 4), 4):
        a = torch.rand(4, 5)
    torch.manual_seed(1)
    assert torch.equal(a, torch.rand(4, 5))


# -- two gloo ranks -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }


def _launch(code: str, args: tuple = (), world: int = 2) -> list[subprocess.Popen]:
    """`world` Python processes running `code` (with `args`) as the ranks of one job (gloo on
    this host)."""
    port = _free_port()
    return [
        subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env=_rank_env(r, world, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(world)
    ]


def _wait(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str, str]]:
    try:
        return [(p.wait(timeout), *p.communicate()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dist") / "scene"
    return generate_scene(root, resolution=16, n_train=4, n_val=1, n_test=1, supersample=1)


def _configs(data: Path, out: Path) -> dict[str, TrainConfig]:
    """Tiny grid and nerf runs with an uneven global batch, learning rates too small to move
    the parameters (Adam's first steps are +-lr whatever the gradient's size), and every
    per-step decision on: grid tries to fit its box (gathering all ranks' surface points),
    grows at step 2 (new optimiser), refreshes its occupancy and switches its MLP on; nerf
    jitters its samples and its raw density (raw noise)."""
    common = dict(
        data=data, max_steps=STEPS, lr=1e-9, lr_final=1e-9, val_every=0, ckpt_every=0,
        progress=False, seed=3,
    )  # fmt: skip
    return {
        "grid": TrainConfig(
            **common, output=out / "grid", method="grid", batch_rays=257,
            grid=GridConfig(num_voxels_final=16**3, upsample_steps=(2,), fit_box_step=1,
                            occ_start=1, occ_every=1, mlp_start=1),
        ),
        "nerf": TrainConfig(
            **common, output=out / "nerf", method="nerf", batch_rays=129,
            nerf=NeRFConfig(width=16, depth=2, skip=0, n_coarse=8, n_fine=8, pos_freqs=4,
                            raw_noise_std=1.0, precision="fp32"),  # auto: bf16 on AMX,
            # where sums in another order differ by far more than the 1e-6 tolerance below
        ),
    }  # fmt: skip


def _train_steps(cfg: TrainConfig) -> list[dict]:
    """STEPS training steps: each step's logged values and gradients (after the exchange)."""
    trainer = Trainer(cfg, load_scene(cfg.data))
    steps = []
    for _ in range(STEPS):
        info = trainer.train_step()
        grads = {
            n: p.grad.clone() for n, p in trainer.method.named_parameters() if p.grad is not None
        }
        steps.append({"info": info, "grads": grads})
    return steps


def rank_worker(data: str, out: str) -> None:
    """One rank of the equivalence test (run in its own process): the configs' steps, and the
    gather of uneven rows that grid's box fit uses."""
    torch.set_num_threads(1)
    with distributed.process_group(torch.device("cpu"), 60.0):
        r = distributed.rank()
        res = {name: _train_steps(cfg) for name, cfg in _configs(Path(data), Path(out)).items()}
        res["rows"] = distributed.all_gather_rows(torch.full((r + 2, 3), float(r)))
        res["none"] = distributed.all_gather_rows(torch.zeros(0, 3))
        # an error while starting on rank 0 (a trained run in --output) is raised on every rank
        cfg = _configs(Path(data), Path(out))["grid"]
        cfg.output = Path(out) / "trained"
        with pytest.raises(NerfkitError) as e:
            train(cfg)
        res["start"] = str(e.value)
        res["clock"] = distributed.broadcast_values([10.0 + r])
        # a rank that stops answering: the other fails once the group's timeout has passed
        quick = torch.distributed.new_group(timeout=timedelta(seconds=1))
        if r == 1:
            time.sleep(3)
        else:
            t0 = time.monotonic()
            with pytest.raises(distributed.DistributedError) as e:
                distributed.all_reduce_mean_([torch.ones(1)], group=quick)
            res["hang"] = (str(e.value), time.monotonic() - t0)
        torch.save(res, Path(out) / f"rank{r}.pt")


def test_two_ranks_compute_the_one_process_gradients(tiny_scene: Path, tmp_path: Path) -> None:
    (tmp_path / "trained").mkdir()
    (tmp_path / "trained" / CHECKPOINT_FILE).write_bytes(b"")
    code = f"import test_distributed as t; t.rank_worker({str(tiny_scene)!r}, {str(tmp_path)!r})"
    procs = _launch(code)
    one = {name: _train_steps(cfg) for name, cfg in _configs(tiny_scene, tmp_path).items()}
    for rc, _, err in _wait(procs, 120):
        assert rc == 0, err[-2000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, ref in one.items():
        for k, want in enumerate(ref):
            for r, res in enumerate(ranks):
                got = res[name][k]
                where = f"{name} step {k} rank {r}"
                assert got["grads"].keys() == want["grads"].keys(), where
                nonzero = [p for p, g in want["grads"].items() if g.abs().max() > 0]
                assert len(nonzero) >= len(want["grads"]) / 2, where  # real gradients
                for p, g in want["grads"].items():
                    # float sums in another order: 1e-6 of the tensor's largest gradient
                    tol = 1e-6 * float(g.abs().max())
                    torch.testing.assert_close(
                        got["grads"][p], g, rtol=1e-5, atol=tol, msg=f"{where} {p}"
                    )
                for key, v in want["info"].items():
                    assert got["info"][key] == pytest.approx(v, rel=1e-5), (where, key)
    assert ranks[0]["grid"][-1]["grads"]["density"].shape[0] > 8  # the grid grew at step 2
    for res in ranks:
        assert torch.equal(res["rows"], torch.tensor([0.0] * 2 + [1.0] * 3)[:, None].expand(5, 3))
        assert res["none"].shape == (0, 3)
        assert res["clock"] == [10.0]  # rank 0's
    trained = f"{tmp_path / 'trained'} already holds a trained run"
    assert ranks[0]["start"].startswith(trained)
    assert ranks[1]["start"].startswith(f"starting training failed on rank 0: {trained}")
    message, waited = ranks[0]["hang"]
    assert message.startswith("rank 0 of 2: averaging gradients (all-reduce) failed (Timed out")
    assert "\n" not in message and 0.9 < waited < 2.9


def test_torchrun_trains_checkpoints_resumes_and_evaluates(
    tiny_scene: Path, tmp_path: Path
) -> None:
    """`torchrun --nproc-per-node 2 -m nerfkit train`: rank 0 alone writes the run and shows
    progress; the loss it logs is the one-process loss; resume with one rank; eval."""
    run, one = tmp_path / "run", tmp_path / "one"
    args = [
        "train", "--data", str(tiny_scene), "--method", "grid", "--max-steps", "6",
        "--batch-rays", "255", "--val-every", "3", "--ckpt-every", "3", "--log-every", "1",
        "--grid.num-voxels-final", str(16**3), "--grid.upsample-steps", "4",
        "--grid.fit-box-step", "-1", "--grid.occ-start", "2", "--grid.mlp-start", "2",
        "--threads", "1", "--max-minutes", "10",  # rank 0's clock is broadcast (not reached)
    ]  # fmt: skip
    logs = tmp_path / "logs"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "--log-dir", str(logs), "--redirects", "3", "-m", "nerfkit", *args, "--output", str(run),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    outs = {p.parent.name + "/" + p.name: p.read_text() for p in logs.rglob("*.log")}
    assert proc.returncode == 0, (proc.stderr[-3000:], outs)
    assert "6/6" in outs["0/stderr.log"] and "step/s" not in outs["1/stderr.log"]  # progress
    assert sorted(p.name for p in (run / "val").iterdir()) == [
        "step_0000003.png",
        "step_0000006.png",
    ]
    assert (run / CHECKPOINT_FILE).is_file()
    # the same run in one process logs the same losses
    assert run_cli([*args, "--output", one, "--no-progress"]) == 0

    def losses(d: Path) -> list[float]:
        recs = [json.loads(line) for line in (d / METRICS_FILE).read_text().splitlines()]
        return [r["loss"] for r in recs if "loss" in r]

    assert len(losses(run)) == 6
    assert losses(run) == pytest.approx(losses(one), rel=1e-4)
    # resume with another number of ranks (one), then evaluate
    cfg = json.loads((run / "config.json").read_text())
    cfg["max_steps"] = 8
    (run / "config.json").write_text(json.dumps(cfg))
    assert run_cli(["train", "--resume", run, "--no-progress"]) == 0
    assert len(losses(run)) == 8
    assert run_cli(["eval", run, "--output", tmp_path / "eval"]) == 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["mean"]["psnr"] > 5


_DYING_RANK = """
import os, sys
from nerfkit import train
step = train.Trainer.train_step
def dying_step(self):
    if self.rank == 1 and self.step == 2:
        os._exit(3)
    return step(self)
train.Trainer.train_step = dying_step
from nerfkit.cli import main
main(sys.argv[1:])
"""


def test_a_killed_rank_ends_the_others_with_a_one_line_error(
    tiny_scene: Path, tmp_path: Path
) -> None:
    """Rank 1 exits at step 2: rank 0 fails at once with a one-line error (exit code 2) instead
    of waiting for ever; a rank that hangs instead is the timeout case of the test above."""
    args = [
        "train", "--data", str(tiny_scene), "--output", str(tmp_path / "run"), "--method",
        "grid", "--max-steps", "50", "--batch-rays", "64", "--no-progress", "--dist-timeout",
        "3", "--val-every", "0", "--grid.num-voxels-final", str(16**3),
    ]  # fmt: skip
    t0 = time.monotonic()
    procs = _launch(_DYING_RANK, args)
    try:
        rc = procs[0].wait(timeout=90)
        waited = time.monotonic() - t0
        err = procs[0].communicate()[1]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert rc == 2, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-2000:]
    assert lines[0].startswith("nerfkit: rank 0 of 2: averaging gradients"), lines[0]
    assert "another rank has probably exited" in lines[0]
    assert waited < 30


def test_gpu_check_script_parses_and_refuses_unknown_options() -> None:
    """benchmarks/gpu_check.sh (run on GPU machines, and with --dry-run by hand) stays valid."""
    script = TESTS.parent / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option --bogus" in bad.stderr
