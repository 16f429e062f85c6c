"""The seam to rl_games (harness.rl.seam): what it declares is what an installed rl_games provides."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT, make_cpu_agent

from harness.errors import UserError
from harness.rl import seam
from harness.rl.agent import HarnessAgent


def test_every_replaced_method_still_exists_in_rl_games_and_is_replaced():
    for name in seam.REPLACED:
        assert callable(getattr(seam.A2CAgent, name, None)), f"rl_games' A2CAgent has no {name} any more"
        owner = next(cls for cls in HarnessAgent.__mro__ if name in vars(cls))
        assert owner.__module__.startswith("harness."), f"{name} is rl_games' own, not replaced"


def test_every_used_attribute_exists_on_the_agent_after_an_epoch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent = make_cpu_agent("task=Cartpole", "num_envs=16", "train.params.config.minibatch_size=256")
    agent.train_epoch()
    missing = [name for name in seam.USED if not hasattr(agent, name)]
    assert not missing, f"rl_games' agent lacks {missing}"


def test_every_used_shaper_attribute_exists_on_the_agents_reward_shaper(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agent = make_cpu_agent("task=Ant", "num_envs=16")
    assert type(agent.rewards_shaper) is seam.DefaultRewardsShaper
    missing = [name for name in seam.SHAPER_USED if not hasattr(agent.rewards_shaper, name)]
    assert not missing, f"rl_games' DefaultRewardsShaper lacks {missing}"


def test_the_project_imports_rl_games_only_through_the_seam():
    imports = re.compile(r"^\s*(from|import) rl_games\b", re.M)
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "harness").rglob("*.py")
        if path.name != "seam.py" and imports.search(path.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize("installed", ["1.7.0", None])
def test_an_unsupported_rl_games_is_one_line_naming_the_supported_versions(monkeypatch, installed):
    def version(name):
        if installed is None:
            raise seam.metadata.PackageNotFoundError(name)
        return installed

    monkeypatch.setattr(seam.metadata, "version", version)
    with pytest.raises(UserError, match=r"supports rl-games 1\.6\.5: pip install -r requirements\.txt") as error:
        seam.check_version()
    assert ("1.7.0 is installed" if installed else "not installed") in str(error.value)


def test_rl_games_test_networks_load_only_when_built():
    """Importing the seam leaves out TorchInductor (rl_games' test networks pull it in); a test network still
    builds, from rl_games' own module, loaded then."""
    check = (
        "import sys; import harness.rl.seam; from rl_games.algos_torch import model_builder; "
        "print('torch._inductor.compile_fx' in sys.modules); builder = model_builder.NETWORK_REGISTRY['testnet'](); "
        "print(type(builder).__module__, type(builder).__name__, 'torch._inductor.compile_fx' in sys.modules)"
    )
    command = [sys.executable, "-c", check]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:2] == ["False", "rl_games.envs.test_network TestNetBuilder True"]
