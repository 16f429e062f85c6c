"""Start-up of training: from the command to the first epoch line, against what `import torch` alone takes.

    python bench/startup.py --task Ant --num-envs 4096 --runs 3

Measures on this machine, one process after another: `python -c "import torch"`; `train.py` (1 epoch, headless)
to its first epoch line, the first run of which may compile MuJoCo Warp's kernels (reported apart, as cold); then
where the time goes: one run under `-X importtime` (imports, by package) and one under cProfile (the main steps
after the imports; the profiler slows Python-heavy steps, so these are a breakdown, not the figure). Prints a table
and writes it as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from throughput import environment  # noqa: E402  (bench/ is not a package)

# The steps of a start-up after the imports: (what, file it is in, function), cumulative seconds under cProfile.
# Indented ones are parts of the one above.
STEPS = [
    ("the config (Hydra's, then fitted to the machine)", "harness/config.py", "prepare_config"),
    ("the agent (rl_games' A2C agent, the env in it)", "harness/rl/agent.py", "__init__"),
    ("  the env (model, worlds, kernels loaded)", "harness/tasks/__init__.py", "make_task"),
    ("    its step run once and captured as a graph", "harness/sim/mjwarp.py", "_record"),
    ("the first epoch", "harness/rl/update.py", "queue_epoch"),
    ("  policy graph captured", "harness/rl/rollout.py", "_capture_policy"),
    ("  update graph captured", "harness/rl/update.py", "_capture"),
]
PACKAGES = ["torch", "rl_games", "warp", "mujoco_warp", "mujoco", "hydra", "omegaconf", "tensorboard", "harness"]


def timed_command(cmd: list[str], workdir: str, until: str | None = None) -> float:
    """Seconds from starting `cmd` to the first output line starting with `until` (or to its end)."""
    start = time.perf_counter()
    with subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        seen, tail = None, []
        for line in proc.stdout:
            if seen is None and until and line.startswith(until):
                seen = time.perf_counter() - start
            tail = [*tail[-30:], line.rstrip()]
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n" + "\n".join(tail))
    if until and seen is None:
        sys.exit(f"no line starting with {until!r} from {' '.join(cmd)}:\n" + "\n".join(tail))
    return seen if until else time.perf_counter() - start


def import_times(stderr: str) -> dict[str, float]:
    """Seconds spent importing each package's own modules (their self times summed), from `-X importtime`."""
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", line)
        if match:
            package = match[2].split(".")[0]
            key = package if package in PACKAGES else "other"
            totals[key] = totals.get(key, 0.0) + int(match[1]) / 1e6
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def profiled_steps(profile: Path) -> dict[str, float]:
    stats = pstats.Stats(str(profile)).stats  # {(file, line, function): (calls, primitive, tottime, cumtime, ...)}
    steps = {}
    for name, path, function in STEPS:
        times = [v[3] for (file, _, func), v in stats.items() if file.endswith(path) and func == function]
        if times:
            steps[name] = max(times)
    return steps


def measure(overrides: list[str], runs: int) -> dict:
    """The timed commands and the breakdowns, in a temporary folder (each run its own experiment: nothing
    overwritten)."""
    train = [str(ROOT / "train.py"), *overrides]
    with tempfile.TemporaryDirectory() as workdir:
        run = itertools.count()

        def first_epoch(*flags: str) -> float:
            command = [sys.executable, *flags, *train, f"experiment=startup_{next(run)}"]
            return timed_command(command, workdir, until="epoch ")

        cold = first_epoch()
        torch_s = [timed_command([sys.executable, "-c", "import torch"], workdir) for _ in range(runs)]
        warm = [first_epoch() for _ in range(runs)]
        profile = Path(workdir) / "startup.prof"
        first_epoch("-m", "cProfile", "-o", str(profile))
        imports = subprocess.run(
            [sys.executable, "-X", "importtime", *train, "experiment=startup_imports"],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        return {
            "first_epoch_line_cold_s": cold,
            "first_epoch_line_s": warm,
            "import_torch_s": torch_s,
            "after_torch_s": statistics.median(warm) - statistics.median(torch_s),
            "imports_s": import_times(imports),
            "profiled_steps_s": profiled_steps(profile),
        }


def report(result: dict) -> None:
    print(f"\n{result['task']}, {result['num_envs']} envs on {result['device']} ({result['date']}): start-up, seconds")
    warm, cold = result["first_epoch_line_s"], result["first_epoch_line_cold_s"]
    runs = ", ".join(f"{t:.2f}" for t in warm)
    print(f"  command to first epoch line   {statistics.median(warm):6.2f}  (runs {runs}; first {cold:.2f}: compiles?)")
    print(f"  python -c 'import torch'      {statistics.median(result['import_torch_s']):6.2f}")
    print(f"  the difference                {result['after_torch_s']:6.2f}  (issue 17's bar: 3 s)")
    print("  imports, by package (-X importtime, one run; each module's own time):")
    for package, seconds in result["imports_s"].items():
        print(f"    {package:<27} {seconds:6.2f}")
    print("  steps after the imports (cProfile, one run; the profiler slows Python):")
    for name, seconds in result["profiled_steps_s"].items():
        print(f"    {name:<46} {seconds:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Ant")
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each command (after the cold one)")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--override", nargs="+", action="extend", default=[], help="extra Hydra overrides")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    overrides = [f"task={args.task}", f"num_envs={args.num_envs}", "max_iterations=1", "headless=True"]
    overrides += [f"sim_device={args.device}", f"rl_device={args.device}", *args.override]
    env = environment(args.device)
    command = " ".join(["python", "bench/startup.py", *sys.argv[1:]])
    result = {"task": args.task, **env, "num_envs": args.num_envs, "command": command}
    result.update(measure(overrides, args.runs))
    report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = env["date"][:16].replace(":", "")
    (args.out / f"{stamp}-{args.task}-startup-{env['device'].replace(' ', '_')}.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
