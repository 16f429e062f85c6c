# Isaac Gym (PhysX) for this harness, from your own copy of Isaac Gym Preview 4 (NVIDIA's download, which no
# registry serves). Put the tarball in the build context, then:
#   docker build -f docker/isaacgym.Dockerfile -t harness-isaacgym .
#   docker run --gpus all -v "$PWD/runs:/workspace/runs" harness-isaacgym \
#       python train.py task=Ant physics_engine=physx headless=True
# The `system` stage needs no tarball: docker/smoke.sh builds it (on a local Ubuntu 20.04 as BASE_IMAGE).
ARG BASE_IMAGE=nvidia/cuda:12.1.1-runtime-ubuntu20.04
FROM ${BASE_IMAGE} AS system

ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics \
    DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Isaac Gym binds Python 3.6-3.8: Ubuntu 20.04's Python 3.8 (venv's ensurepip needs python3-distutils there).
# Vulkan and GL libraries for its renderer.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.8 python3.8-venv python3-distutils python3.8-dev git \
       libvulkan1 libegl1 libgl1 libglib2.0-0 libgomp1 tini \
    && rm -rf /var/lib/apt/lists/* \
    && python3.8 -m venv /opt/venv \
    && useradd --create-home --uid 1000 harness \
    && mkdir -p /workspace/runs \
    && chown -R harness:harness /workspace

FROM system AS isaacgym
ARG ISAACGYM_TARBALL=IsaacGym_Preview_4_Package.tar.gz
# Isaac Gym from the tarball, then IsaacGymEnvs (the tasks) and this project's dependencies, in versions that
# still support Python 3.8 (README: Isaac Gym).
# The tarball is bind-mounted for this step only (BuildKit), so no layer keeps a copy of NVIDIA's download.
# hadolint ignore=DL3013
RUN --mount=type=bind,source=${ISAACGYM_TARBALL},target=/tmp/isaacgym.tar.gz \
    tar -xzf /tmp/isaacgym.tar.gz -C /opt \
    && pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir -e /opt/isaacgym/python \
    && pip install --no-cache-dir "torch==2.4.1" "rl-games==1.6.5" "hydra-core==1.3.2" "omegaconf==2.3.0" \
       "gym==0.23.1" "tensorboard<2.15" "numpy<1.25" "rich>=13" \
    && pip install --no-cache-dir "git+https://github.com/isaac-sim/IsaacGymEnvs.git@v1.5.1"

WORKDIR /workspace
# The code only (the tarball is in the context too).
COPY --chown=harness:harness train.py play.py ./
COPY --chown=harness:harness cfg cfg/
COPY --chown=harness:harness harness harness/
USER 1000:1000
VOLUME ["/workspace/runs"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "train.py", "task=Ant", "physics_engine=physx", "headless=True"]
