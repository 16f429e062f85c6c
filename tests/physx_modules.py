"""Print the project's modules that `physics_engine=physx` imports (they must run on Python 3.8), for vermin."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = (
    "import sys; import harness.training, harness.play, harness.sim.physx, harness.export; "
    "print('\\n'.join(m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None)))"
)


def physx_modules() -> list[str]:
    files = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True, check=True)
    paths = {(ROOT / f).resolve() for f in files.stdout.split()}  # a few modules name their file relatively
    ours = {p for p in paths if p.is_relative_to(ROOT) and p.is_file()}
    return sorted(str(p.relative_to(ROOT)) for p in ours | {ROOT / "train.py", ROOT / "play.py"})


if __name__ == "__main__":
    print(" ".join(physx_modules()))
