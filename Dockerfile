# The harness on a GPU node:
#   docker build -t harness .
#   docker run --gpus all -v "$PWD/runs:/workspace/runs" -v harness-cache:/cache harness python train.py task=Ant
# BASE_IMAGE and PYTHON let the same file build on another Debian-family base (docker/smoke.sh builds it on a
# plain Debian 12 with python3.11, to test the image where NVIDIA's images cannot be pulled).
ARG BASE_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
FROM ${BASE_IMAGE}
ARG PYTHON=python3.12

# compute for CUDA, graphics for off-screen rendering where a renderer wants the driver's EGL.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics \
    DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    WARP_CACHE_PATH=/cache/warp

# Ubuntu 24.04's Python 3.12 (or the base's PYTHON); EGL and GL libraries for headless rendering; tini as PID 1 (forwards signals to
# python, reaps children). Versions follow the base image.
# The kernel cache holds native code that is loaded as it is: owned by the image's user, writable by no one else.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends "$PYTHON" "$PYTHON-venv" libegl1 libgl1 libgomp1 tini \
    && rm -rf /var/lib/apt/lists/* \
    && "$PYTHON" -m venv /opt/venv \
    && useradd --create-home --uid 1000 harness \
    && mkdir -p /workspace/runs /cache/warp \
    && chown -R harness:harness /workspace /cache \
    && chmod 755 /cache /cache/warp

WORKDIR /workspace

# Dependencies in their own layer, before the code: editing the code rebuilds in seconds.
COPY requirements.txt .
# For a build behind a TLS-inspecting proxy (its certificate) or from a local wheel folder: paths to files
# mounted for the build alone (docker/smoke.sh does); unset, pip uses its defaults.
ARG PIP_CERT
ARG PIP_FIND_LINKS
RUN pip install --no-cache-dir -r requirements.txt

COPY --chown=harness:harness . .

USER 1000:1000
# Runs land in /workspace/runs (mount it to keep them); compiled Warp kernels in /cache (a volume keeps them;
# with another --user, mount a cache folder that user owns).
VOLUME ["/workspace/runs", "/cache"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "train.py", "task=Ant", "headless=True"]
