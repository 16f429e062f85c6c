"""Whether a process mapping another process's GPU memory (CUDA IPC) slows the kernels of both, and which kinds.

    torchrun --standalone --nproc_per_node=2 bench/peer_mapping_cost.py [--task Ant --num-envs 4096]

Two ranks that map each other's memory train 5-10% slower than two that do not, with nothing exchanged, and on the GPU
clock the loss is in the rollout, which exchanges nothing (bench/results/2026-11-27-fused-ppo-loss-H100x2.md). Each
rank here times four kinds of work on its own GPU with CUDA events (torch only, no Warp, no training): many tiny
kernels launched one by one, the same tiny kernels replayed from a CUDA graph (the training's hot path), random
gathers over 256 MiB (address translation), and a large elementwise pass (bandwidth). It times them twice (the
spread), then every rank maps every other rank's buffer through the CUDA driver's IPC calls, and times them again on
the same tensors and on tensors allocated after the mapping. One line per rank and phase: milliseconds, the median of
five repeats. With `--task`, also 100 of that task's env steps (its CUDA graph, MuJoCo Warp's physics inside) and 100
physics steps alone, on an env built before the mapping and one built after. `PEER_MAP=0` skips the mapping: the
control, which shows what the later phases change by themselves.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
from pathlib import Path

import torch
import torch.distributed as dist

TINY_KERNELS = 2000
GATHER_FLOATS = 1 << 26  # 256 MiB
GATHERED = 1 << 24
REPEATS = 5
ROOT = Path(__file__).resolve().parents[1]


class IpcHandle(ctypes.Structure):
    _fields_ = [("reserved", ctypes.c_char * 64)]


def driver() -> ctypes.CDLL:
    cuda = ctypes.CDLL("libcuda.so.1")
    for name in ("cuMemAlloc_v2", "cuIpcGetMemHandle", "cuIpcOpenMemHandle_v2"):
        getattr(cuda, name).restype = ctypes.c_int
    return cuda


def check(result: int, call: str) -> None:
    if result != 0:
        raise RuntimeError(f"{call} failed with CUDA error {result}")


def map_each_other(cuda: ctypes.CDLL, rank: int, world: int) -> list[int]:
    """Every rank allocates 4 MiB with the driver's plain allocator and maps every other rank's."""
    own = ctypes.c_uint64()
    check(cuda.cuMemAlloc_v2(ctypes.byref(own), ctypes.c_size_t(4 << 20)), "cuMemAlloc")
    handle = IpcHandle()
    check(cuda.cuIpcGetMemHandle(ctypes.byref(handle), own), "cuIpcGetMemHandle")
    handles = [None] * world
    dist.all_gather_object(handles, bytes(handle))  # (its .reserved would stop at a zero byte)
    mapped = []
    for peer, raw in enumerate(handles):
        if peer == rank:
            continue
        pointer = ctypes.c_uint64()
        peer_handle = IpcHandle.from_buffer_copy(raw)
        check(cuda.cuIpcOpenMemHandle_v2(ctypes.byref(pointer), peer_handle, ctypes.c_uint(1)), "cuIpcOpenMemHandle")
        mapped.append(pointer.value)
    dist.barrier()
    return mapped


def timed(work) -> float:
    """Median milliseconds of `work` on the GPU's clock over REPEATS runs, after one to warm up."""
    work()
    times = []
    for _ in range(REPEATS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        work()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def env_workloads(task_name: str, num_envs: int, device: torch.device) -> dict:
    """100 env steps (one CUDA graph each, on CUDA) and 100 physics steps of a freshly built task."""
    sys.path.insert(0, str(ROOT))
    from omegaconf import OmegaConf

    from harness.config import compose_config
    from harness.tasks import make_task

    devices = [f"sim_device={device}", f"rl_device={device}"]
    cfg = compose_config([f"task={task_name}", f"num_envs={num_envs}", *devices, "headless=True"])
    task = make_task(OmegaConf.to_container(cfg.task, resolve=True), str(device), str(device))
    task.reset()
    actions = torch.zeros(task.num_envs, task.num_actions, device=device)

    def physics():
        for _ in range(100):
            task.sim.step()

    return {
        "100 env steps": lambda: [task.step(actions.uniform_(-1.0, 1.0)) for _ in range(100)],
        "100 physics steps": physics,
    }


def workloads(device: torch.device, args: argparse.Namespace) -> dict:
    small = torch.zeros(4096, device=device)
    source = torch.randn(GATHER_FLOATS, device=device)
    index = torch.randint(0, GATHER_FLOATS, (GATHERED,), device=device)
    graph, short_graph = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        small.add_(1.0)
        for captured, kernels in ((graph, TINY_KERNELS), (short_graph, 10)):
            captured.capture_begin()
            for _ in range(kernels):
                small.add_(1.0)
            captured.capture_end()
    torch.cuda.current_stream(device).wait_stream(stream)

    def tiny():
        for _ in range(TINY_KERNELS):
            small.add_(1.0)

    return {
        **(env_workloads(args.task, args.num_envs, device) if args.task else {}),
        f"{TINY_KERNELS} tiny kernels": tiny,
        "the same from a graph": graph.replay,
        "200 launches of a 10-kernel graph": lambda: [short_graph.replay() for _ in range(200)],
        "random gathers": lambda: [source.index_select(0, index) for _ in range(10)],
        "elementwise": lambda: [source.mul_(1.0) for _ in range(10)],
    }


def report(rank: int, phase: str, work: dict) -> None:
    times = "; ".join(f"{name} {timed(run):.3f} ms" for name, run in work.items())
    print(f"rank {rank}, {phase}: {times}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", help="also time this task's env steps and physics (MuJoCo Warp)")
    parser.add_argument("--num-envs", type=int, default=4096)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    torch.cuda.set_device(device)
    work = workloads(device, args)
    report(rank, "before", work)
    report(rank, "before, again", work)
    mapped = map_each_other(driver(), rank, world) if os.environ.get("PEER_MAP", "1") == "1" else []  # 0: the control
    report(rank, f"after mapping {len(mapped)} peer buffer(s)", work)
    report(rank, "after, new tensors", workloads(device, args))
    report(rank, "after, again", work)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
