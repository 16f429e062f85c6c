"""Several processes training one policy (torchrun, `multi_gpu=True`): the process group and its collectives.

Each rank simulates and learns on its own device; gradients, the KL divergence and the normalizers'
statistics are averaged across ranks, and rank 0 decides when to stop. The averages are tensor operations on the
device, so they can sit inside CUDA graphs; the only host exchanges are rank 0's decision once an epoch (`agree`)
and its weights at the start, both over the gloo group, which never waits for a GPU.

Between GPUs the averages go through each other's memory when all ranks are on one machine (harness.ipc_all_reduce:
no NCCL at all) and through NCCL's own communicator across machines (harness.nccl; HARNESS_ALL_REDUCE=nccl picks it
on one machine too). Not through torch.distributed's NCCL backend: making torch's NCCL group slows the process's
training by 6-11%, and NCCL's own communicator by about 6%, even for one rank with nothing exchanged
(bench/results/2026-11-26-multi-gpu-what-costs-H100x2.md; why is not known). The process group is gloo in every
case (the rendezvous, and the collectives themselves between CPU processes). One rank alone averages nothing.
"""

from __future__ import annotations

import os
import types

import torch
import torch.distributed as dist

from harness import nccl
from harness.errors import UserError

# rl_games' RunningMeanStd (TorchScript-compiled in its models, so recognised by its statistics, not its class)
NORMALIZER_BUFFERS = {"running_mean", "running_var", "count"}


def ranks_from_submitit() -> None:
    """Under Hydra's submitit launcher with several tasks a job (hydra.launcher.tasks_per_node=<GPUs>), each task is
    a rank: give it the environment torchrun would (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), from
    submitit's own, so that multi_gpu=True runs there as under torchrun. Nothing changes elsewhere."""
    if "LOCAL_RANK" in os.environ or not os.environ.get("SUBMITIT_EXECUTOR"):
        return
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # cuda:LOCAL_RANK, as under torchrun


# What averages this rank's GPU tensors with the other ranks' (`.comm`: an IpcAllReduce or an NCCL Communicator);
# None on the CPU or with one process.
_gpus = types.SimpleNamespace(comm=None)
ALL_REDUCE_CHOICES = ("auto", "nccl")


def init_process_group(device: str) -> None:
    """Join the torchrun launch (a gloo group) and, for ranks on GPUs, what averages their tensors (see above)."""
    choice = os.environ.get("HARNESS_ALL_REDUCE", "auto")
    if choice not in ALL_REDUCE_CHOICES:
        raise UserError(f"HARNESS_ALL_REDUCE={choice} is not one of {', '.join(ALL_REDUCE_CHOICES)}")
    device = torch.device(device)
    if device.type == "cuda":
        # Before any CUDA or NCCL work, so that nothing of this process lands on another rank's GPU.
        torch.cuda.set_device(device)
        device = torch.device("cuda", torch.cuda.current_device())
    dist.init_process_group("gloo")
    if device.type != "cuda" or dist.get_world_size() == 1:
        return
    if choice != "nccl":
        _gpus.comm = _ipc_all_reduce(device)
        if _gpus.comm is not None:
            return
    uid = torch.zeros(nccl.UNIQUE_ID_BYTES, dtype=torch.uint8)  # rank 0's, sent over gloo to the others
    if dist.get_rank() == 0:
        uid.copy_(torch.frombuffer(bytearray(nccl.unique_id()), dtype=torch.uint8))
    dist.broadcast(uid, 0)
    _gpus.comm = nccl.Communicator(uid.numpy().tobytes(), dist.get_rank(), dist.get_world_size(), device)


def _ipc_all_reduce(device: torch.device):
    """The IPC all-reduce where all ranks are on this machine and every rank could set it up, else None (and NCCL
    averages): decided together, so that no rank waits in a collective the others left."""
    from harness import ipc_all_reduce  # imported here: Warp, which only GPU ranks need

    if not ipc_all_reduce.usable(dist.get_world_size()):
        return None
    try:
        comm, reason = ipc_all_reduce.IpcAllReduce(dist.group.WORLD, device), ""
    except RuntimeError as error:  # e.g. where CUDA memory handles cannot pass between the processes
        comm, reason = None, str(error).strip().splitlines()[0]
    everyone = torch.tensor([comm is not None], dtype=torch.int32)
    dist.all_reduce(everyone, op=dist.ReduceOp.MIN)
    if everyone.item():
        return comm
    if reason:
        print(f"rank {dist.get_rank()}: the GPUs cannot share memory ({reason}); averaging through NCCL", flush=True)
    return None


def close_process_group() -> None:
    if _gpus.comm is not None:
        torch.cuda.synchronize(_gpus.comm.device)
        _gpus.comm.close()
        _gpus.comm = None
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """Whether this process is one rank of several (a torchrun launch with multi_gpu=True)."""
    return dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def average_(tensor: torch.Tensor) -> torch.Tensor:
    """Replace `tensor` by its mean over the ranks, in place, without waiting for it."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    if _gpus.comm is not None:
        _gpus.comm.average_(tensor)
    else:  # gloo has no AVG
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(dist.get_world_size())
    return tensor


def average_gradients_(parameters) -> None:
    """Average the parameters' gradients over the ranks: one flat buffer, one all-reduce, and the gradients
    then made views of that buffer, so that nothing is copied back (rl_games divides and copies tensor by
    tensor: two kernels a tensor, in every minibatch step)."""
    parameters = [p for p in parameters if p.grad is not None]
    if not parameters or not dist.is_initialized():
        return
    flat = average_(torch.cat([p.grad.reshape(-1) for p in parameters]))
    offset = 0
    for p in parameters:
        p.grad = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()


def broadcast_(module: torch.nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers, in place (over gloo, once, at the start; no pickling)."""
    for tensor in module.state_dict().values():
        host = tensor.detach().cpu()
        dist.broadcast(host, 0)
        tensor.copy_(host)


def average_normalizers_(model: torch.nn.Module) -> None:
    """Pool the running mean and variance of every rl_games RunningMeanStd in `model` over the ranks, in place.

    Each rank updates its normalizers from its own worlds' data; pooling them every epoch keeps all
    ranks acting on the same statistics (the mean of the means, and the variance of all the data the
    ranks saw: the mean of var + mean^2, less the pooled mean squared), and rank 0's checkpoint holds them.
    Counts are equal across ranks (equal batches), so they stay as they are. One all-reduce for all.
    """
    normalizers = [m for m in model.modules() if {n for n, _ in m.named_buffers(recurse=False)} >= NORMALIZER_BUFFERS]
    if not normalizers or not dist.is_initialized():
        return
    moments = torch.cat([torch.cat([m.running_mean, m.running_var + m.running_mean**2]) for m in normalizers])
    average_(moments)
    offset = 0
    for m in normalizers:
        size = m.running_mean.numel()
        mean, second = moments[offset : offset + size], moments[offset + size : offset + 2 * size]
        m.running_mean.copy_(mean)
        m.running_var.copy_((second - mean**2).clamp_(min=0.0))
        offset += 2 * size


def agree(*values: int) -> list[int]:
    """Rank 0's `values` on every rank (one small broadcast between the hosts); the values as given on one rank."""
    if not dist.is_initialized():
        return list(values)
    decided = torch.tensor(values, dtype=torch.long)
    dist.broadcast(decided, 0)
    return decided.tolist()
