"""Does GPU code loaded into a process slow that process's other kernels? A diagnostic for the CUDA machine.

    python bench/loaded_code_probe.py none|nccl|mujoco-warp|mujoco-warp-elsewhere[+STEP...]

Times a CUDA graph of 80 small kernels (a 16384 x 64 MLP-like chain, GPU time by CUDA events: what a training
epoch is made of) and a large matmul, before and after one step: `nccl` makes and destroys NCCL's communicator of
one rank (harness.nccl), `mujoco-warp` makes MuJoCo Warp data for 100 worlds in this process (its kernels load),
`mujoco-warp-elsewhere` has another process do the same; steps joined by `+` run one after another, timed after
each. Each line is the best of three measurements.
Results: bench/results/2026-11-26-capture-video-H100.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch
import warp as wp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ANT = ROOT / "harness" / "tasks" / "assets" / "ant.xml"
MAKE_DATA = (
    "import sys, time, mujoco, mujoco_warp as mjw, warp as wp\n"
    "with wp.ScopedDevice('cuda:0'):\n"
    "    mjw.make_data(mujoco.MjModel.from_xml_path(sys.argv[1]), nworld=100)\n"
    "wp.synchronize(); print('ready', flush=True); time.sleep(600)\n"
)


def make_graph(device: torch.device):
    x = torch.randn(16384, 64, device=device)
    weights = [torch.randn(64, 64, device=device) * 0.1 for _ in range(8)]

    def chain():
        h = x
        for k in range(40):
            h = torch.tanh(h @ weights[k % 8]) + 0.01 * h
        return h.sum()

    for _ in range(3):
        chain()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        chain()
    return graph


def measure(graph, big: torch.Tensor) -> str:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(200):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    replay = start.elapsed_time(end) / 200
    start.record()
    for _ in range(5):
        big @ big
    end.record()
    torch.cuda.synchronize()
    return f"graph {replay:.3f} ms | matmul {start.elapsed_time(end) / 5:.2f} ms"


def main() -> None:
    steps = sys.argv[1]
    wp.init()
    device = torch.device("cuda:0")
    torch.cuda.set_device(device)
    wp.zeros(1, device="cuda:0")  # Warp's own start, as in training, before the baseline
    graph, big = make_graph(device), torch.randn(8192, 8192, device=device)

    def report(stage: str) -> None:
        print(f"{steps:22s} {stage:24s} {min(measure(graph, big) for _ in range(3))}", flush=True)

    report("before")
    others = []
    for step in steps.split("+"):
        others += do(step, device)
        time.sleep(1.0)
        report(f"after {step}")
    for other in others:
        other.kill()


def do(step: str, device: torch.device) -> list:
    """One step; the processes it started (to end at exit)."""
    if step == "nccl":
        from harness import nccl

        nccl.Communicator(nccl.unique_id(), 0, 1, device).destroy()
    elif step == "mujoco-warp":
        import mujoco
        import mujoco_warp as mjw

        with wp.ScopedDevice("cuda:0"):
            mjw.make_data(mujoco.MjModel.from_xml_path(str(ANT)), nworld=100)
    elif step == "mujoco-warp-elsewhere":
        other = subprocess.Popen([sys.executable, "-c", MAKE_DATA, str(ANT)], stdout=subprocess.PIPE, text=True)
        other.stdout.readline()
        return [other]
    return []


if __name__ == "__main__":
    main()
