"""What can be checked of the container image without a Docker engine (hadolint lints it in .ci/run)."""

from __future__ import annotations

import re

from conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [line.strip() for line in DOCKERFILE.splitlines() if line.strip() and not line.startswith("#")]


def test_the_image_installs_the_requirements_readme_tells_users_to_install():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -r requirements.txt" in readme
    assert "COPY requirements.txt ." in INSTRUCTIONS
    assert any(re.fullmatch(r"RUN pip install --no-cache-dir -r requirements\.txt", line) for line in INSTRUCTIONS)


def test_dependencies_are_a_layer_before_the_code():
    copy_requirements = INSTRUCTIONS.index("COPY requirements.txt .")
    install = next(i for i, line in enumerate(INSTRUCTIONS) if "-r requirements.txt" in line)
    copy_code = next(i for i, line in enumerate(INSTRUCTIONS) if re.match(r"COPY (--chown=\S+ )?\. \.", line))
    assert copy_requirements < install < copy_code


def test_runs_headless_as_a_non_root_user_with_gpu_capabilities():
    users = [line.split()[1] for line in INSTRUCTIONS if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    capabilities = re.search(r"NVIDIA_DRIVER_CAPABILITIES=(\S+)", DOCKERFILE)[1].split(",")
    assert {"compute", "graphics"} <= set(capabilities)
    assert INSTRUCTIONS[-1] == 'CMD ["python", "train.py", "task=Ant", "headless=True"]'


def test_runs_and_the_kernel_cache_are_volumes():
    cache = re.search(r"WARP_CACHE_PATH=(\S+)", DOCKERFILE)[1]
    volumes = re.search(r"VOLUME \[(.*)\]", DOCKERFILE)[1]
    assert '"/workspace/runs"' in volumes and any(cache.startswith(v.strip(' "')) for v in volumes.split(","))


def test_runs_and_caches_stay_out_of_the_build_context():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"runs/", ".git", "**/__pycache__", ".pytest_cache/", ".venv/"} <= set(ignored)


ISAACGYM_DOCKERFILE = (ROOT / "docker" / "isaacgym.Dockerfile").read_text()


def test_python_runs_under_an_init_that_forwards_signals_and_reaps_children():
    for dockerfile in (DOCKERFILE, ISAACGYM_DOCKERFILE):
        assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in dockerfile
        assert re.search(r"apt-get install[^&]*\btini\b", dockerfile), "tini comes from the distribution's packages"


def test_runs_checkpoints_and_secrets_stay_out_of_every_image():
    for ignore_file in (ROOT / ".dockerignore", ROOT / "docker" / "isaacgym.Dockerfile.dockerignore"):
        ignored = set(ignore_file.read_text().split())
        assert {"runs/", "*.pth", "*.onnx", ".env", "**/.env", "*.pem", "*.key", ".netrc"} <= ignored, ignore_file


def test_the_kernel_cache_belongs_to_the_image_user_and_no_one_else():
    assert not re.search(r"chmod\s+[0-7]*7[0-7]?\b.*/cache|chmod\s+1777", DOCKERFILE)
    assert re.search(r"chown -R harness:harness [^&]*/cache", DOCKERFILE)
    assert re.search(r"chmod 755 /cache /cache/warp", DOCKERFILE)


def test_the_isaac_gym_tarball_is_used_without_staying_in_a_layer():
    assert "COPY ${ISAACGYM_TARBALL}" not in ISAACGYM_DOCKERFILE
    assert re.search(r"RUN --mount=type=bind,source=\$\{ISAACGYM_TARBALL\}", ISAACGYM_DOCKERFILE)


def test_the_base_image_is_nvidias_cuda_runtime_unless_a_build_argument_says_otherwise():
    """docker/smoke.sh builds the same file on a local Debian; users get the CUDA image."""
    assert re.search(r"^ARG BASE_IMAGE=nvidia/cuda:\S+-runtime-ubuntu24\.04$", DOCKERFILE, re.M)
    assert "FROM ${BASE_IMAGE}" in INSTRUCTIONS and "ARG PYTHON=python3.12" in INSTRUCTIONS
