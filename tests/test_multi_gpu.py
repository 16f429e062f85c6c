"""Multi-GPU training checked on the CPU: ranks as CPU processes (gloo) run the same code as GPU ranks (peer memory
or NCCL) minus the CUDA graphs; rank and device choice, rank-0 writing, bad input. The GPU tests at the end run
the GPUs' all-reduces."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading

import pytest
import torch
from conftest import CPU, ROOT, compose_config, make_cpu_agent, run_script, torchrun
from ranks import SMALL_ANT

from harness import distributed, ipc_all_reduce
from harness.checkpoints import load_checkpoint
from harness.config import multi_gpu_device
from harness.errors import UserError
from harness.runs import RunFolder, prepare_run_dir

TORCHRUN = {"LOCAL_RANK": "1", "RANK": "3", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}


def test_each_rank_gets_the_gpu_of_its_local_rank():
    assert multi_gpu_device(TORCHRUN, device_count=2) == "cuda:1"
    assert multi_gpu_device({**TORCHRUN, "LOCAL_RANK": "0"}, device_count=8) == "cuda:0"
    assert multi_gpu_device(TORCHRUN, device_count=0, on_cpu=True) == "cpu", "rl_device=cpu: CPU processes"


def test_more_ranks_than_gpus_is_refused():
    with pytest.raises(UserError, match="started 2 processes on this machine, which has 1 GPU"):
        multi_gpu_device(TORCHRUN, device_count=1)


def test_no_torchrun_or_no_gpu_is_refused():
    with pytest.raises(UserError, match="needs torchrun"):
        multi_gpu_device({}, device_count=2)
    with pytest.raises(UserError, match="needs CUDA GPUs"):
        multi_gpu_device(TORCHRUN, device_count=0)


def test_only_rank_zero_writes_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose_config(*CPU)
    prepare_run_dir(cfg, RunFolder("Ant"), write=False)
    assert not (tmp_path / "runs").exists()
    prepare_run_dir(cfg, RunFolder("Ant"), write=True)
    assert (tmp_path / "runs" / "Ant" / "config.yaml").is_file()


def test_gpus_of_one_machine_average_through_shared_memory_and_across_machines_through_nccl(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "can_device_access_peer", lambda a, b: True)
    assert ipc_all_reduce.usable(world_size=2)
    assert not ipc_all_reduce.usable(world_size=4), "ranks on another machine"
    monkeypatch.setattr(torch.cuda, "can_device_access_peer", lambda a, b: False)
    assert not ipc_all_reduce.usable(world_size=2), "GPUs that cannot map each other's memory"


def test_the_ipc_all_reduce_gives_every_rank_the_same_mean():
    """harness.ipc_all_reduce's exchange (copy in, barrier, sum in rank order, barrier) with three ranks as threads
    sharing CPU arrays, as GPUs share them through CUDA IPC: every rank gets the mean, bitwise alike, round after
    round, for float32 and float64 tensors of varying length. (The GPU's wait kernel runs in the cuda test.)"""
    import warp as wp

    world, capacity, rounds = 3, 4096, 25
    buffers = [wp.zeros(capacity, dtype=wp.float32, device="cpu") for _ in range(world)]
    flags = [wp.zeros(world, dtype=wp.int32, device="cpu") for _ in range(world)]
    generator = torch.Generator().manual_seed(0)
    sent = [[torch.randn(100 + 150 * i, generator=generator) for i in range(rounds)] for _ in range(world)]
    got = [[None] * rounds for _ in range(world)]

    def rank(r):
        exchange = ipc_all_reduce.Exchange(r, buffers, flags, "cpu")
        for i in range(rounds):
            tensor = sent[r][i].clone() if i % 5 else sent[r][i].double()
            got[r][i] = exchange.average_(tensor)

    threads = [threading.Thread(target=rank, args=(r,), daemon=True) for r in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a rank is stuck at a barrier"
    for i in range(rounds):
        mean = sent[0][i] + sent[1][i] + sent[2][i]
        mean /= world
        for r in range(world):
            assert torch.equal(got[r][i].float(), mean), f"rank {r}, round {i}"
    exchange = ipc_all_reduce.Exchange(0, buffers, flags, "cpu")
    with pytest.raises(ValueError, match="hold 4096 floats"):
        exchange.average_(torch.zeros(capacity + 1))
    with pytest.raises(ValueError, match="contiguous float tensor"):
        exchange.average_(torch.zeros(4, 4).t())


def test_memory_that_cuda_ipc_did_not_map_is_found_before_any_rank_waits_on_it():
    """Where CUDA IPC cannot open a peer's memory, Warp hands back fresh memory instead of an error: the ranks read
    each other's signatures through their mappings and all refuse together (then NCCL averages), rather than spin on
    flags no peer can write. Here rank 1's memory as rank 0 sees it, mapped and not."""
    import torch.distributed as dist
    import warp as wp

    def rank_memory(signature):
        buffer, flags = wp.zeros(16, dtype=wp.float32, device="cpu"), wp.zeros(2, dtype=wp.int32, device="cpu")
        if signature:
            buffer[:1].fill_(signature)
            flags[signature - 1 : signature].fill_(signature)
        return buffer, flags

    read = ipc_all_reduce.IpcAllReduce._signatures_read
    (own, own_flags), (peer, peer_flags) = rank_memory(1), rank_memory(2)
    assert read([own, peer], [own_flags, peer_flags])
    unmapped, unmapped_flags = rank_memory(0)
    assert not read([own, unmapped], [own_flags, unmapped_flags])
    assert not read([own, peer], [own_flags, unmapped_flags])
    agreement = ipc_all_reduce.IpcAllReduce.__new__(ipc_all_reduce.IpcAllReduce)  # its agreement alone
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        agreement.group = dist.group.WORLD
        agreement._agree_mapped(True)
        with pytest.raises(RuntimeError, match="could not map every rank's GPU memory"):
            agreement._agree_mapped(False)
    finally:
        dist.destroy_process_group()


def test_an_unknown_all_reduce_is_refused_before_joining_the_ranks(monkeypatch):
    monkeypatch.setenv("HARNESS_ALL_REDUCE", "mpi")
    with pytest.raises(UserError, match="HARNESS_ALL_REDUCE=mpi is not one of auto, nccl$"):
        distributed.init_process_group("cpu")
    assert not distributed.active()


@pytest.mark.parametrize("failing", [0, 1])
def test_a_rank_whose_ipc_set_up_fails_takes_every_rank_to_nccl_together(tmp_path, failing):
    """One rank cannot share its memory (tests/ipc_ranks.py: a real CPU refusal), the other could: both must fall
    back to NCCL, and their next collective must still pair up (had the failing rank skipped the set-up's collectives,
    gloo would pair different collectives of the two ranks and hang or fail)."""
    script = str(ROOT / "tests" / "ipc_ranks.py")
    cpu_only = {"CUDA_VISIBLE_DEVICES": ""}  # the same on any machine, whatever GPUs it has (peers or not)
    launch = ("--standalone", "--nproc_per_node=2", script, str(failing))
    result = torchrun(*launch, cwd=tmp_path, timeout=240, env=cpu_only)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for rank in range(2):
        assert f"rank {rank}: NCCL, ranks sum to 1" in result.stdout
    assert f"rank {failing}: the GPUs cannot share memory (IPC requires a CUDA device)" in result.stdout


@pytest.mark.skipif("LOCAL_RANK" in os.environ, reason="needs a shell that torchrun did not start")
def test_train_multi_gpu_without_torchrun_is_a_clear_error(tmp_path):
    result = run_script("train.py", "multi_gpu=True", cwd=tmp_path)
    assert result.returncode != 0 and "multi_gpu=True needs torchrun's environment" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


def launch_ranks(out, *flags: str, env: dict | None = None, ranks: int = 2) -> dict:
    """Run tests/ranks.py as `ranks` processes; per seeding (tests/ranks.py SEEDS), each rank's model state
    after its epochs and rank 0's checkpoint."""
    script = str(ROOT / "tests" / "ranks.py")
    result = torchrun("--standalone", f"--nproc_per_node={ranks}", script, str(out), *flags, cwd=out, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {
        seeds: {
            **{rank: torch.load(out / f"{seeds}{rank}.pt") for rank in range(ranks)},
            "checkpoint": load_checkpoint(out / f"checkpoint_{seeds}.pth")["model"],
        }
        for seeds in ("same", "different")
        if (out / f"{seeds}0.pt").exists()
    }


def one_process_epoch(workdir, monkeypatch, seed: int) -> dict:
    """The same small Ant update as tests/ranks.py, in one process without multi_gpu."""
    monkeypatch.chdir(workdir)
    agent = make_cpu_agent(*SMALL_ANT, seed=seed)
    agent.epoch_num += 1
    agent.train_epoch()
    return agent.model.state_dict()


def assert_same_state(state: dict, expected: dict) -> None:
    assert state.keys() == expected.keys()
    for name, value in expected.items():  # weights and both normalizers' statistics
        torch.testing.assert_close(state[name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_ranks_average_gradients_and_normalizers_exactly(tmp_path, monkeypatch):
    """One launch of two CPU ranks: with the same data they learn exactly as one process; with different data they
    end equal (averaged gradient and learning rate, pooled statistics), rank 0 saves what every rank acts on, and
    rank 1's data left its mark."""
    ranks = launch_ranks(tmp_path, "--seeds", "same", "different")
    alone = one_process_epoch(tmp_path, monkeypatch, seed=5)  # also rank 0's data alone
    assert_same_state(ranks["same"][0], alone)
    assert_same_state(ranks["same"][1], alone)
    different = ranks["different"]
    assert_same_state(different[1], different[0])
    assert_same_state(different[0], different["checkpoint"])
    for name in ("running_mean_std.running_mean", "value_mean_std.running_var", "a2c_network.mu.weight"):
        assert not torch.allclose(different[0][name], alone[name]), f"{name}: rank 1's data left no mark"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_train_through_a_c10d_rendezvous(tmp_path):
    """README's several-machines command, as two 'nodes' of one CPU process each on this machine."""
    rendezvous = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{free_port()}"]
    train = [str(ROOT / "train.py"), "task=Cartpole", "num_envs=16", "max_iterations=3", *CPU, "multi_gpu=True"]
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", *rendezvous, "--rdzv_id=test", *train],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=600) for node in nodes]
    for node, (stdout, stderr) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, stdout[-2000:] + stderr[-2000:]
    stdout = "".join(out for out, _ in outputs)
    assert stdout.count("Training Cartpole: 16 envs x 2 ranks on cpu") == 1, "rank 0 alone reports"
    assert re.findall(r"^epoch (\d)/3 +\| +[\d,]+ steps/s", stdout, flags=re.M) == ["1", "2", "3"]
    run = tmp_path / "runs" / "Cartpole"
    assert any((run / "nn").glob("last_Cartpole_ep_3_rew_*.pth"))
    assert len(list((run / "summaries").iterdir())) == 1, "one TensorBoard file, rank 0's"


EVERY_GPU = torch.cuda.device_count()


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
@pytest.mark.parametrize(
    ("gpus", "all_reduce"),
    [
        (2, "auto"),  # CUDA IPC (one machine)
        (2, "nccl"),  # NCCL (across machines)
        # every GPU of the machine: the IPC all-reduce's sums then run over three or more buffers
        pytest.param(
            EVERY_GPU, "auto", marks=pytest.mark.skipif(EVERY_GPU < 3, reason="needs three GPUs"), id="every-gpu-auto"
        ),
    ],
)
def test_gpus_replay_the_update_with_their_all_reduce_as_run_eagerly(tmp_path, gpus, all_reduce):
    env = {"HARNESS_ALL_REDUCE": all_reduce}
    ranks = launch_ranks(tmp_path, "--cuda", "--epochs", "2", env=env, ranks=gpus)["different"]
    for rank in range(gpus):
        assert_same_state(ranks[rank], ranks[0])
        assert torch.load(tmp_path / f"graph_vs_eager{rank}.pt") < 1e-6
        used = (tmp_path / f"all_reduce{rank}.txt").read_text()
        assert used == {"auto": "IpcAllReduce", "nccl": "Communicator"}[all_reduce]
    assert_same_state(ranks[0], ranks["checkpoint"])
