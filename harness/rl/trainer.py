"""The trainer: rl_games' Runner set up for a run, as train.py, the benchmarks and the tests build it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from harness.config import global_rank, whole_number
from harness.errors import UserError
from harness.rl.agent import HarnessAgent, register_env
from harness.rl.seam import AlgoObserver, Runner
from harness.runs import RUNS_DIR
from harness.tasks import make_env

# rl_games' PPO settings that are numbers, by what makes each one mean something (checked where the config has it):
# rl_games would otherwise fail deep inside with a traceback, or train on a value that cannot work.
WHOLE_NUMBERS = ("horizon_length", "minibatch_size", "mini_epochs")  # >= 1
POSITIVE = ("learning_rate", "e_clip", "kl_threshold", "grad_norm")  # > 0
FRACTIONS = ("gamma", "tau")  # from 0 to 1
REAL_NUMBERS = ("entropy_coef", "critic_coef", "bounds_loss_coef")


def build_trainer(
    cfg: DictConfig, params: dict, observers: Sequence[AlgoObserver] = (), agent: type | None = None
) -> Runner:
    """rl_games' Runner for `cfg` and its rl_games `params` (rl_games_params): the env registered as IsaacGymEnvs
    registers it (built when rl_games asks), `agent` as the continuous PPO (HarnessAgent; bench/throughput.py also
    times rl_games' own A2CAgent), and every observer told of every event (the progress line, TensorBoard extras,
    ...: adding one touches no other module)."""
    register_env(lambda: make_env(cfg))
    runner = Runner(algo_observer=Observers(observers))
    runner.algo_factory.register_builder("a2c_continuous", agent or HarnessAgent)
    runner.load({"params": params})
    runner.reset()
    return runner


def create_agent(runner: Runner) -> HarnessAgent:
    """The runner's agent as its train() has it before the first epoch: tensors made, every env reset."""
    agent = runner.algo_factory.create(runner.algo_name, base_name="run", params=runner.params)
    agent.algo_observer.after_init(agent)
    agent.init_tensors()
    agent.obs = agent.env_reset()
    return agent


class Observers(AlgoObserver):
    """Several observers as rl_games' one: each is told of every event, in order."""

    def __init__(self, observers: Sequence[AlgoObserver]) -> None:
        super().__init__()
        self.observers = list(observers)

    def before_init(self, base_name, config, experiment_name) -> None:
        for observer in self.observers:
            observer.before_init(base_name, config, experiment_name)

    def after_init(self, algo) -> None:
        for observer in self.observers:
            observer.after_init(algo)

    def process_infos(self, infos, done_indices) -> None:
        for observer in self.observers:
            observer.process_infos(infos, done_indices)

    def after_steps(self) -> None:
        for observer in self.observers:
            observer.after_steps()

    def after_clear_stats(self) -> None:  # (not in rl_games' AlgoObserver; its default observer has it)
        for observer in self.observers:
            if hasattr(observer, "after_clear_stats"):
                observer.after_clear_stats()

    def after_print_stats(self, frame, epoch_num, total_time) -> None:
        for observer in self.observers:
            observer.after_print_stats(frame, epoch_num, total_time)


def rl_games_params(cfg: DictConfig, experiment: str) -> dict:
    """The train config's `params`, set for this harness: names, devices, run folder, our progress line.

    What this machine makes of the train config (float32 on the CPU, a minibatch no larger than the batch) is
    written into `cfg` itself, so that the run's config.yaml records what ran and rebuilds it.
    """
    fit_train_config(cfg)
    params = OmegaConf.to_container(cfg.train.params, resolve=True)
    config = params["config"]
    config.update(name=experiment, full_experiment_name=experiment, train_dir=str(RUNS_DIR), device=cfg.rl_device)
    config["print_stats"] = False  # ProgressObserver prints one readable line per epoch instead
    # rl_games' own multi_gpu opens a torch NCCL group of its own; here the agent trains across harness.distributed's.
    config["multi_gpu"] = False
    params["seed"] = cfg.seed + global_rank()  # each rank's envs and samples differ
    # Off unless asked for: compiling costs start-up time, and on the CPU it needs a C++ toolchain.
    config.setdefault("torch_compile", False)
    config["capture_rollout"] = bool(cfg.get("capture_rollout", False))  # read by harness.rl.rollout
    return params


def fit_train_config(cfg: DictConfig) -> None:
    """Adjust cfg.train.params.config to this machine, in place; each adjustment is said once."""
    config = cfg.train.params.config
    _check_numbers(config)
    if torch.device(cfg.rl_device).type == "cpu" and config.get("mixed_precision"):
        print("mixed_precision is a CUDA feature: training in float32 on the CPU.")
        config.mixed_precision = False
    _fit_minibatch(config)


def _check_numbers(config) -> None:
    """Refuse, in one line, a PPO number (above) that cannot mean anything; the whole numbers every config has."""

    def real(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    for keys, fits, what in (
        (WHOLE_NUMBERS, whole_number, "a whole number >= 1"),
        (POSITIVE, lambda v: real(v) and v > 0, "a number > 0"),
        (FRACTIONS, lambda v: real(v) and 0 <= v <= 1, "a number from 0 to 1"),
        (REAL_NUMBERS, real, "a number"),
    ):
        for key in keys:
            value = config.get(key)
            if (value is not None or key in WHOLE_NUMBERS) and not fits(value):
                raise UserError(f"train.params.config.{key} must be {what}, got {value!r}")


def _fit_minibatch(config) -> None:
    batch, minibatch = config["num_actors"] * config["horizon_length"], config["minibatch_size"]
    if minibatch > batch:
        print(f"minibatch_size {minibatch} exceeds the batch of {batch} (num_envs x horizon_length): using {batch}.")
        config["minibatch_size"] = minibatch = batch
    if batch % minibatch:
        raise UserError(
            f"minibatch_size {minibatch} does not divide the batch of {batch} (num_envs x horizon_length); "
            f"set train.params.config.minibatch_size to a divisor of {batch}"
        )
