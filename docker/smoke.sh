#!/usr/bin/env bash
# Container smoke test: build the image and check, in containers, what README promises of it.
#
#   bash docker/smoke.sh            # podman (installed with apt-get when missing), on a local Debian 12 base
#   ENGINE=docker BASE_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04 PYTHON=python3.12 bash docker/smoke.sh
#
# It builds the image from the repository's Dockerfile, then trains Cartpole on the CPU with runs/ bind-mounted,
# plays the run from a second container, stops a longer training with `stop` and looks for its checkpoint, and
# checks PID 1 (tini), the image's user and the kernel-cache volume. Prints one line a check; exits non-zero if
# any fails. Where NVIDIA's images cannot be pulled, the base is a Debian 12 made here with debootstrap.
set -uo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-podman}
IMAGE=${IMAGE:-localhost/harness:smoke}
BASE_IMAGE=${BASE_IMAGE:-localhost/debian:bookworm}
PYTHON=${PYTHON:-python3.11}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}
failures=0

say() { printf '%s\n' "$*"; }
check() {  # check NAME COMMAND...: runs the command, prints ok/FAILED with the name
    local name=$1
    shift
    if "$@"; then say "ok      $name"; else say "FAILED  $name"; failures=$((failures + 1)); fi
}
die() { say "smoke test: $*" >&2; exit 1; }

# --- the engine, and the flags this kind of host needs --------------------------------------------------------
engine=("$ENGINE")
run_flags=()
build_flags=()
if [ "$ENGINE" = podman ]; then
    if ! command -v podman > /dev/null || ! command -v runc > /dev/null; then
        say "installing podman and runc"
        apt-get install -y -q podman runc > /dev/null || die "cannot install podman (apt-get install podman runc)"
    fi
    # runc and cgroupfs: crun fails on hosts with hybrid cgroups; explicit ulimits: podman's defaults can be refused.
    engine=(podman --runtime runc --cgroup-manager=cgroupfs)
    run_flags=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
    build_flags=(--network=host "${run_flags[@]}")
fi
command -v "$ENGINE" > /dev/null || die "$ENGINE is not installed"

# --- the base images -------------------------------------------------------------------------------------------
# local_base IMAGE SUITE MIRROR [DEBOOTSTRAP OPTION...]: a minimal root file system made here, as an image.
local_base() {
    local image=$1 suite=$2 mirror=$3 rootfs
    shift 3
    "${engine[@]}" image exists "$image" 2> /dev/null && return
    command -v debootstrap > /dev/null || apt-get install -y -q debootstrap > /dev/null || die "cannot install debootstrap"
    rootfs=$(mktemp -d)
    say "making the base image $image with debootstrap"
    debootstrap --variant=minbase "$@" "$suite" "$rootfs" "$mirror" > /dev/null || die "debootstrap $suite failed"
    tar -C "$rootfs" -c . | "${engine[@]}" import - "$image" > /dev/null 2>&1 || die "cannot import $image"
    rm -rf "$rootfs"
}
if [ "$BASE_IMAGE" = localhost/debian:bookworm ]; then
    local_base "$BASE_IMAGE" bookworm http://deb.debian.org/debian
fi

# --- the build -------------------------------------------------------------------------------------------------
# pip inside the build trusts what the host's pip trusts (a TLS-inspecting proxy's certificate, say) and takes
# wheels from the host's wheel folder (PIP_FIND_LINKS): both are mounted read-only for the build only and never
# enter a layer.
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
    build_flags+=(-v "$PIP_CERT:/etc/ssl/host-ca.pem:ro" --build-arg PIP_CERT=/etc/ssl/host-ca.pem)
fi
if [ -n "${PIP_FIND_LINKS:-}" ] && [ -d "$PIP_FIND_LINKS" ]; then
    build_flags+=(-v "$PIP_FIND_LINKS:/host-wheels:ro" --build-arg PIP_FIND_LINKS=/host-wheels)
fi
say "building $IMAGE on $BASE_IMAGE ($PYTHON)"
started=$SECONDS
"${engine[@]}" build "${build_flags[@]}" --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg PYTHON="$PYTHON" \
    -t "$IMAGE" . > /tmp/harness-smoke-build.log 2>&1 ||
    { tail -30 /tmp/harness-smoke-build.log; die "the image did not build (log: /tmp/harness-smoke-build.log)"; }
say "built in $((SECONDS - started)) s"

# --- the checks, in containers ---------------------------------------------------------------------------------
workdir=$(mktemp -d)
runs="$workdir/runs"
mkdir -p "$runs"
chown 1000:1000 "$runs"  # README: runs written from the image are the image user's (uid 1000)
cache="harness-smoke-cache-$$"
stopped="harness-smoke-stop-$$"
cleanup() {
    "${engine[@]}" rm -f "$stopped" > /dev/null 2>&1
    "${engine[@]}" volume rm -f "$cache" > /dev/null 2>&1
    rm -rf "$workdir"
}
trap cleanup EXIT
"${engine[@]}" volume create "$cache" > /dev/null || die "cannot create a volume"
mounts=(-v "$runs:/workspace/runs" -v "$cache:/cache")
in_container() { "${engine[@]}" run --rm --pull=never "${run_flags[@]}" "${mounts[@]}" "$IMAGE" "$@"; }
cpu=(sim_device=cpu rl_device=cpu headless=True num_envs=32 train.params.config.minibatch_size=512)

uid=$(in_container id -u)
check "the image's user is not root (uid $uid)" test "$uid" = 1000

read -r pid1 python_pid < <(in_container python -c 'import os; print(open("/proc/1/comm").read().strip(), os.getpid())')
check "PID 1 is the init ($pid1), python is not (pid $python_pid)" test "$pid1" = tini -a "$python_pid" != 1

cache_modes=$(in_container stat -c '%U %a %n' /cache /cache/warp)
private() {  # every "owner mode path" line: owned by the image's user, no write bit for others
    awk '{ if ($1 != "harness" || substr($2, length($2)) ~ /[2367]/) bad = 1 } END { exit bad }' <<< "$1"
}
check "the kernel cache is the image user's and not world-writable ($(echo "$cache_modes" | paste -sd,))" \
    private "$cache_modes"

started=$SECONDS
in_container python train.py task=Cartpole max_iterations=3 train.params.config.save_frequency=1 "${cpu[@]}" \
    > "$workdir/train.log" 2>&1
train_rc=$?
train_s=$((SECONDS - started))
check "train.py task=Cartpole in a container (exit $train_rc, ${train_s} s)" test "$train_rc" = 0
[ "$train_rc" = 0 ] || tail -20 "$workdir/train.log"
check "its run folder is on the host: config.yaml and 3 periodic checkpoints" \
    test -f "$runs/Cartpole/config.yaml" -a "$(find "$runs/Cartpole/nn" -name 'last_Cartpole_ep_*.pth' | wc -l)" = 3
owners=$(find "$runs/Cartpole" -printf '%U:%G\n' | sort -u | paste -sd,)
check "the run's files on the host are owned by uid 1000 ($owners)" \
    test -z "$(find "$runs/Cartpole" ! -uid 1000)"
kernels=$(in_container find /cache/warp -type f | wc -l)
check "the kernel cache volume kept the compiled kernels ($kernels files)" test "$kernels" -gt 0

started=$SECONDS
in_container python play.py task=Cartpole checkpoint=auto num_episodes=4 "${cpu[@]}" > "$workdir/play.log" 2>&1
play_rc=$?
check "play.py checkpoint=auto plays it from a second container (exit $play_rc, $((SECONDS - started)) s)" \
    grep -q "Play report: Cartpole" "$workdir/play.log"
[ "$play_rc" = 0 ] || tail -20 "$workdir/play.log"

# A longer training stopped as a scheduler or `docker stop` stops it: SIGTERM to PID 1, which passes it on.
"${engine[@]}" run -d --pull=never --name "$stopped" "${run_flags[@]}" "${mounts[@]}" "$IMAGE" \
    python train.py task=Cartpole max_iterations=100000 experiment=stopped "${cpu[@]}" > /dev/null
for _ in $(seq 1 300); do  # until its first epoch (grep reads to the end: no SIGPIPE under pipefail)
    "${engine[@]}" logs "$stopped" 2>&1 | grep '^epoch' > /dev/null && break
    sleep 1
done
started=$SECONDS
"${engine[@]}" stop -t "$STOP_TIMEOUT" "$stopped" > /dev/null
stop_s=$((SECONDS - started))
exit_code=$("${engine[@]}" inspect -f '{{.State.ExitCode}}' "$stopped")
check "stop: python got SIGTERM and exited 143 within the ${STOP_TIMEOUT} s timeout (exit $exit_code, ${stop_s} s)" \
    test "$exit_code" = 143 -a "$stop_s" -lt "$STOP_TIMEOUT"
said=$("${engine[@]}" logs "$stopped" 2>&1 | grep 'Training stopped by SIGTERM')
saved=$(sed -n 's/.*saved runs\/\([^;]*\.pth\);.*/\1/p' <<< "$said")
check "stop: it saved a checkpoint of the current epoch, on the host (${saved:-none named})" \
    test -n "$saved" -a -f "$runs/$saved"

# --- docker/isaacgym.Dockerfile, up to the step that needs NVIDIA's tarball (the rest is read by the tests) ------
ISAACGYM_BASE=${ISAACGYM_BASE:-localhost/ubuntu:focal}
if [ "$ISAACGYM_BASE" = localhost/ubuntu:focal ]; then
    # Ubuntu's archive key is not among this Debian host's keyrings: the packages debootstrap fetches are taken
    # unchecked, for this throw-away test base only; apt inside it checks what the build installs against the
    # Ubuntu keyring the base now holds. universe: tini (NVIDIA's Ubuntu images have it too).
    local_base "$ISAACGYM_BASE" focal http://archive.ubuntu.com/ubuntu --components=main,universe --no-check-gpg
fi
started=$SECONDS
"${engine[@]}" build "${build_flags[@]}" --target system --build-arg BASE_IMAGE="$ISAACGYM_BASE" \
    -f docker/isaacgym.Dockerfile -t localhost/harness-isaacgym:system . > /tmp/harness-smoke-isaacgym.log 2>&1
isaacgym_rc=$?
[ "$isaacgym_rc" = 0 ] || tail -20 /tmp/harness-smoke-isaacgym.log
check "docker/isaacgym.Dockerfile builds up to the Isaac Gym step (exit $isaacgym_rc, $((SECONDS - started)) s)" \
    test "$isaacgym_rc" = 0
[ "$isaacgym_rc" = 0 ] && check "  and that stage has Python 3.8 in /opt/venv, tini and the user harness (uid 1000)" \
    "${engine[@]}" run --rm --pull=never "${run_flags[@]}" localhost/harness-isaacgym:system \
    sh -c '/opt/venv/bin/python --version | grep -q "Python 3\.8\." && test -x /usr/bin/tini && test "$(id -u harness)" = 1000'

if [ "$failures" -gt 0 ]; then
    say "smoke test: $failures check(s) failed"
    exit 1
fi
say "smoke test: all checks passed"
