"""What the multi-GPU path costs one GPU, part by part: train.py with pieces of it switched off.

    torchrun --standalone --nproc_per_node=1 bench/multi_gpu_ablation.py task=Ant num_envs=16384 multi_gpu=True
    ABLATE=grad,avg,norm,agree torchrun ... (the same)      # every collective of the multi-GPU path off
    PRE=nccl-destroyed torchrun ... bench/multi_gpu_ablation.py task=Ant num_envs=16384    # no multi_gpu

ABLATE (comma-separated) turns off parts of harness.distributed for the run: grad (the gradient all-reduce),
avg (every all-reduce), norm (pooling the normalizers), agree (rank 0's stop decision; the other ranks then stop
after max_iterations epochs), gloo (no IPC all-reduce or NCCL communicator: the gloo group carries the GPUs'
collectives too).
PRE does something before train.py starts:
setdev (torch.cuda.set_device), nccl (a torch.distributed NCCL process group, eagerly connected), nccl-lazy (one
never used), nccl-destroyed (one created and destroyed at once, so training runs the plain single-GPU path),
gloo-destroyed (the same with gloo), nccl-unique-id (NCCL's library initialised, no communicator), nccl-comm and
nccl-comm-destroyed (NCCL's own communicator of one rank through harness.nccl, kept or destroyed; no group),
nccl-comm-late (one made and destroyed at the start of the third epoch, after the training's kernels and CUDA
graphs exist), symm-alloc (a 4 MiB buffer of PyTorch's symmetric memory, allocated through CUDA's virtual memory
API, kept; the all-reduce before harness.ipc_all_reduce used it), ipc (a cudaMalloc buffer exported by legacy CUDA
IPC), nvml (NVIDIA's management library initialised), peer (GPU 0 given access to GPU 1's memory, CUDA peer access,
which opening a peer's IPC handle also turns on; needs two GPUs); warp+STEP initialises Warp before STEP.
SHARE (two ranks on GPUs, with ABLATE=grad,avg,norm,agree so that nothing is exchanged) changes what the ranks
share once their group is up: unmap (the IPC all-reduce made, then closed before training), import0 or import1
(with gloo in ABLATE: only rank 0, or only rank 1, maps the other's 4 MiB cudaMalloc buffer through CUDA IPC).
Rank 0's progress line is what is read: import0 shows the importer's speed, import1 the exporter's.
Smaller SHARE steps (with gloo in ABLATE; comma-separated, done in order on every rank): torch-ctx (torch makes the
CUDA context), warp-init (wp.init()), warp-alloc (a 4 MiB buffer from Warp with the mempool off, kept),
warp-export (that buffer's IPC handle taken), torch-export (a torch cudaMalloc buffer exported, no Warp).
A diagnostic, not a benchmark: compare the env steps/s of the progress lines with plain `python train.py` on the
same machine, as in bench/results/2026-11-25-multi-gpu-overhead-H100x2.md.
"""

import itertools
import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import distributed, nccl  # noqa: E402


def ablate(parts: set) -> None:
    if "grad" in parts:
        distributed.average_gradients_ = lambda parameters: None
    if "avg" in parts:
        distributed.average_ = lambda tensor: tensor
    if "norm" in parts:
        distributed.average_normalizers_ = lambda model: None
    if "agree" in parts:  # each rank decides alone: rank 0 as in training, the others (which never log) by count
        limit, epochs = max_iterations(sys.argv), itertools.count(1)
        distributed.agree = lambda finished, *rest: [int(finished or next(epochs) >= limit), *rest]
    if "gloo" in parts:
        import torch
        import torch.distributed as dist

        def gloo_only(device):
            torch.cuda.set_device(device)
            dist.init_process_group("gloo")

        distributed.init_process_group = gloo_only


def share_after_group(step: str) -> None:
    init = distributed.init_process_group

    def init_then_share(device) -> None:
        init(device)
        for each in step.split(","):
            share_step(each)
        print(f"SHARE={step} done on rank {distributed.rank()}", flush=True)

    distributed.init_process_group = init_then_share


def share_step(step: str) -> None:
    import torch
    import warp as wp

    device = torch.device("cuda", torch.cuda.current_device())
    if step == "unmap":
        if type(distributed._gpus.comm).__name__ != "IpcAllReduce":
            sys.exit("SHARE=unmap needs the IPC all-reduce: ranks on GPUs of one machine, gloo not in ABLATE")
        distributed._gpus.comm.close()
        distributed._gpus.comm = None
    elif step in ("import0", "import1"):
        KEEP.append(one_way_ipc(importer=int(step[-1])))
    elif step == "torch-ctx":
        KEEP.append(torch.zeros(1, device=device))
    elif step == "warp-init":
        wp.init()
    elif step == "warp-alloc":
        KEEP.append(plain_warp_buffer())
    elif step == "warp-export":
        KEEP.append(KEEP[-1].ipc_handle())
    elif step == "torch-export":
        KEEP.append(torch.empty(1 << 20, device=device))
        KEEP[-1].untyped_storage()._share_cuda_()
    else:
        sys.exit(f"SHARE={step} is not one of unmap, import0, import1, torch-ctx, warp-init, warp-alloc, ...")


def one_way_ipc(importer: int) -> tuple:
    """Every rank exports a plain cudaMalloc buffer; only `importer` maps another rank's (the next one's)."""
    import torch.distributed as dist
    import warp as wp

    own = plain_warp_buffer()
    handles = [None] * dist.get_world_size()
    dist.all_gather_object(handles, own.ipc_handle())
    rank = dist.get_rank()
    if rank != importer:
        return (own,)
    peer = handles[(rank + 1) % len(handles)]
    return own, wp.from_ipc_handle(peer, wp.float32, (1 << 20,), device=own.device)


def plain_warp_buffer():
    """4 MiB on this rank's GPU from Warp with its mempool off (CUDA's plain allocator), as the IPC set-up allocates."""
    import torch
    import warp as wp

    wp.init()
    device = wp.device_from_torch(torch.device("cuda", torch.cuda.current_device()))
    with wp.ScopedMempool(device, False):
        return wp.zeros(1 << 20, dtype=wp.float32, device=device)


def max_iterations(argv: list) -> int:
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith("max_iterations=")]
    if not values or not values[-1].isdigit():
        sys.exit("ABLATE=agree needs max_iterations=N: ranks other than 0 stop after that many epochs")
    return int(values[-1])


KEEP = []  # what PRE made that must live as long as the training


def before_training(step: str) -> None:
    import torch
    import torch.distributed as dist

    torch.cuda.set_device("cuda:0")
    if step.startswith("warp+"):  # Warp initialised first (the env would do it later)
        import warp

        warp.init()
        step = step.removeprefix("warp+")
    if step == "nccl":
        dist.init_process_group("nccl", device_id=torch.device("cuda:0"))
    elif step in ("nccl-lazy", "nccl-destroyed"):
        dist.init_process_group("nccl")
    if step == "nccl-destroyed":
        dist.destroy_process_group()
    if step == "gloo-destroyed":
        dist.init_process_group("gloo")
        dist.destroy_process_group()
    if step == "nccl-unique-id":  # NCCL's library initialised, no communicator
        nccl.unique_id()
    if step in ("nccl-comm", "nccl-comm-destroyed"):  # NCCL's own communicator of one rank, no process group
        comm = one_rank_communicator()
        if step == "nccl-comm-destroyed":
            comm.close()
        else:
            KEEP.append(comm)
    if step == "peer":
        enable_peer_access(0, 1)
    gpu_memory_before_training(step)
    if step == "nccl-comm-late":
        from harness.rl.update import SyncFreeUpdate

        train_epoch, epochs = SyncFreeUpdate.train_epoch, []

        def late(self):
            epochs.append(None)
            if len(epochs) == 3:
                one_rank_communicator().close()
            return train_epoch(self)

        SyncFreeUpdate.train_epoch = late


def gpu_memory_before_training(step: str) -> None:
    """The PRE steps of bench/results/2026-11-26-multi-gpu-what-costs-H100x2.md (memory other processes may map)."""
    import torch

    if step == "symm-alloc":  # the buffer only, no rendezvous
        import torch.distributed._symmetric_memory as symmetric_memory

        KEEP.append(symmetric_memory.empty(1 << 20, dtype=torch.float32, device="cuda:0"))
        print("symmetric memory backend:", symmetric_memory.get_backend("cuda:0"), flush=True)
    if step == "ipc":  # a plain cudaMalloc buffer exported for other processes (legacy CUDA IPC)
        KEEP.append(torch.empty(1 << 20, device="cuda:0"))
        KEEP[-1].untyped_storage()._share_cuda_()
    if step == "nvml":  # NVIDIA's management library initialised (NCCL and symmetric memory both query it)
        import ctypes

        nvml = ctypes.CDLL("libnvidia-ml.so.1")
        assert nvml.nvmlInit_v2() == 0
        KEEP.append(nvml)


def enable_peer_access(device: int, peer: int) -> None:
    """CUDA's driver API, as cudaIpcOpenMemHandle does for the harness's IPC all-reduce, without any IPC."""
    import ctypes

    import torch

    torch.empty(1, device=f"cuda:{peer}")  # the peer's primary context exists
    torch.cuda.set_device(device)
    torch.empty(1, device=f"cuda:{device}")  # and this device's is current
    cuda, peer_context = ctypes.CDLL("libcuda.so.1"), ctypes.c_void_p()
    assert cuda.cuDevicePrimaryCtxRetain(ctypes.byref(peer_context), peer) == 0
    assert cuda.cuCtxEnablePeerAccess(peer_context, 0) == 0
    print(f"peer access from cuda:{device} to cuda:{peer} enabled", flush=True)


def one_rank_communicator():
    import torch

    comm = nccl.Communicator(nccl.unique_id(), 0, 1, torch.device("cuda:0"))
    comm.average_(torch.ones(4, device="cuda:0"))
    torch.cuda.synchronize()
    return comm


if __name__ == "__main__":
    ablate(set(filter(None, os.environ.get("ABLATE", "").split(","))))
    if os.environ.get("SHARE"):
        share_after_group(os.environ["SHARE"])
    if os.environ.get("PRE"):
        before_training(os.environ["PRE"])
    sys.argv[0] = str(ROOT / "train.py")
    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
