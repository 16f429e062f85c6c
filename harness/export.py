"""Policy export for deployment without rl_games: observation normalizer and actor in one ONNX or TorchScript file."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from harness.runs import atomic_path


class DeployablePolicy(nn.Module):
    """Raw observations in, deterministic actions in [-1, 1] out (what the env applies)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        # rl_games' model: an optional running mean/std normalizer, then the actor-critic network.
        self.normalizer = copy.deepcopy(model.running_mean_std) if model.normalize_input else nn.Identity()
        self.network = copy.deepcopy(model.a2c_network)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mu = self.network({"obs": self.normalizer(obs)})[0]
        return mu.clamp(-1.0, 1.0)


def export_policy(model: nn.Module, num_obs: int, fmt: str, folder: Path, stem: str) -> Path:
    """Write `model`'s policy as `<folder>/<stem>.onnx` or `.pt` (TorchScript); returns the path."""
    policy = DeployablePolicy(model).to("cpu").eval()
    example = torch.zeros(1, num_obs)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.{'onnx' if fmt == 'onnx' else 'pt'}"
    with torch.no_grad(), atomic_path(path) as tmp:
        if fmt == "onnx":
            batch = torch.export.Dim("batch")
            # The exporter narrates its passes and notes optional packages it lacks; none of it is for the user.
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                torch.onnx.export(
                    policy,
                    (example,),
                    tmp,
                    input_names=["obs"],
                    output_names=["actions"],
                    dynamic_shapes=({0: batch},),
                    external_data=False,
                    verbose=False,
                )
        else:
            torch.jit.save(torch.jit.trace(policy, example), tmp)
    return path
