# Shared settings of testbed/up, testbed/down and testbed/env (sourced, not run).
# Everything lives under one run dir; its path must stay short (unix socket paths are limited to 107 bytes).

TESTBED_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$TESTBED_SRC")"
TB_DIR="${APPLIANCE_TESTBED_DIR:-/tmp/appliance-testbed}"
TB_SOCK="$TB_DIR/docker.sock"
TB_PIDFILE="$TB_DIR/dockerd.pid"
TB_LOG="$TB_DIR/dockerd.log"
TB_DOCKER_CONFIG="$TB_DIR/docker-config"
TB_ENVFILE="$TB_DIR/env"
TB_IMAGE="appliance-sim-vllm:local"
TB_IMAGE_LABEL="appliance.sim.hash"
TB_COMPOSE_VERSION="2.40.3"

# Our daemon only: never the default /var/run/docker.sock, never a docker context.
export DOCKER_HOST="unix://$TB_SOCK"
export DOCKER_CONFIG="$TB_DOCKER_CONFIG"
unset DOCKER_CONTEXT

tb_die() {
    echo "testbed: ERROR: $*" >&2
    exit 1
}

# The pid of the dockerd we started, if it is alive (and really a dockerd); empty otherwise.
tb_live_pid() {
    local pid
    [ -s "$TB_PIDFILE" ] || return 0
    pid="$(cat "$TB_PIDFILE" 2>/dev/null)"
    case "$pid" in '' | *[!0-9]*) return 0 ;; esac
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "dockerd"; then
        echo "$pid"
    fi
}

tb_answers() {
    [ -S "$TB_SOCK" ] && timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

tb_env_lines() {
    printf 'export DOCKER_HOST=%q\n' "unix://$TB_SOCK"
    printf 'export DOCKER_CONFIG=%q\n' "$TB_DOCKER_CONFIG"
    printf 'export APPLIANCE_SIM_IMAGE=%q\n' "$TB_IMAGE"
}
