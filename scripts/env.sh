#!/usr/bin/env bash
# Source this: creates (once) a virtual environment with ptr and everything it needs, activates
# it, and keeps ROS 2 discovery on this machine. Used by scripts/demo, scripts/test and .ci/run.
#
#   PTR_VENV            where the environment lives            (default: <repo>/.venv)
#   PTR_TORCH           the torch requirement installed first  (default: torch==2.13.0)
#   PTR_EXTRAS          extras of ptr to install               (default: ros,sim,dev,fleet; no `ros`
#                       when a ROS 2 install is sourced -- its own rclpy is used then)
#   PTR_ROS2_LAUNCH     vendored ROS 2 launch stack installed into the environment when no
#                       ROS install is sourced (default: <repo>/../shared/vendor/ros2_launch)
#   ROS_DOMAIN_ID       DDS domain of this run                 (default: random in 1..100)

PTR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PTR_VENV="${PTR_VENV:-$PTR_ROOT/.venv}"

_ptr_die() { echo "ptr setup: $*" >&2; return 1; }

_ptr_python() {
  local py
  for py in "${PYTHON:-}" python3.12 python3.11 python3.10 python3; do
    [ -n "$py" ] || continue
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  return 1
}

_ptr_apt() {
  # Debian/Ubuntu packages a fresh machine may lack: venv support and EGL for headless MuJoCo.
  command -v apt-get >/dev/null 2>&1 || return 0
  local sudo=''
  [ "$(id -u)" = 0 ] || sudo='sudo'
  local need=()
  "$1" -c 'import ensurepip, venv' 2>/dev/null || need+=("python3-venv")
  ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || need+=("libegl1" "libgl1")
  [ "${#need[@]}" -eq 0 ] && return 0
  echo "ptr setup: installing ${need[*]} (apt)" >&2
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}" >/dev/null
}

_ptr_chromium() {
  # Optional: chromium for the report page's browser test, which skips without it. Tried once
  # per environment (a stamp in the venv), so a machine without the package is not slowed down.
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || return 0
  local tried="$PTR_VENV/.ptr-chromium-tried" sudo=''
  [ -e "$tried" ] && return 0
  [ "$(id -u)" = 0 ] || sudo='sudo'
  : > "$tried"
  echo "ptr setup: installing chromium (apt) for the browser test" >&2
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium; } >/dev/null 2>&1 ||
    echo "ptr setup: apt-get install chromium failed; the browser test will skip" >&2
  return 0
}

_ptr_launch_stack() {
  # ROS 2's launch stack (`ros2 launch`, `ros2 run`, launch_pytest) for tests/launch. A sourced
  # ROS install brings its own; elsewhere it comes from the vendored sources beside the clone.
  [ -z "${ROS_DISTRO:-}" ] || return 0
  local src="${PTR_ROS2_LAUNCH:-$PTR_ROOT/../shared/vendor/ros2_launch}" stamp want
  if [ ! -x "$src/install" ]; then
    echo "ptr setup: no ROS install sourced and no $src: tests/launch will skip" >&2
    return 0
  fi
  stamp="$PTR_VENV/.ptr-launch-stamp"
  want="$(cat "$src/install" "$src/../README.md" 2>/dev/null | sha256sum | cut -c1-16)"
  # Installed here, so tests/launch must run: its skip becomes a failure (PTR_LAUNCH_REQUIRED).
  export PTR_LAUNCH_REQUIRED=1
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
     "$PTR_VENV/bin/python" -c 'import launch_pytest, launch_ros, ros2cli' 2>/dev/null; then
    return 0
  fi
  echo "ptr setup: installing the ROS 2 launch stack from $src" >&2
  local log="$PTR_VENV/ros2-launch-install.log"
  "$src/install" "$PTR_VENV/bin/python" > "$log" 2>&1 ||
    { tail -n 20 "$log" >&2; _ptr_die "launch stack install failed (log: $log)"; return 1; }
  echo "$want" > "$stamp"
}

_ptr_setup() {
  local py extras stamp want
  py="$(_ptr_python)" || _ptr_die "needs Python >= 3.10 (set PYTHON=...)" || return 1
  _ptr_apt "$py" || _ptr_die "apt-get install failed" || return 1
  if [ -n "${ROS_DISTRO:-}" ]; then
    extras="${PTR_EXTRAS:-sim,dev,fleet}"
  else
    extras="${PTR_EXTRAS:-ros,sim,dev,fleet}"
  fi
  if [ ! -x "$PTR_VENV/bin/python" ]; then
    echo "ptr setup: creating $PTR_VENV" >&2
    if [ -n "${ROS_DISTRO:-}" ]; then
      "$py" -m venv --system-site-packages "$PTR_VENV" || return 1  # sees the system rclpy
    else
      "$py" -m venv "$PTR_VENV" || return 1
    fi
  fi
  _ptr_chromium
  stamp="$PTR_VENV/.ptr-install-stamp"
  want="$(cat "$PTR_ROOT/pyproject.toml" "$PTR_ROOT/setup.py" | sha256sum | cut -c1-16)-$extras"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "ptr setup: installing ptr[$extras] into $PTR_VENV (first run takes a few minutes)" >&2
    local log="$PTR_VENV/pip-install.log"
    {
      "$PTR_VENV/bin/python" -m pip install --upgrade pip &&
      # torch first, pinned: an unpinned `torch` would pull a multi-GB CUDA build.
      { "$PTR_VENV/bin/python" -c 'import torch' 2>/dev/null ||
        "$PTR_VENV/bin/python" -m pip install "${PTR_TORCH:-torch==2.13.0}"; } &&
      "$PTR_VENV/bin/python" -m pip install -e "$PTR_ROOT[$extras]"
    } > "$log" 2>&1 || { tail -n 30 "$log" >&2; _ptr_die "pip install failed (log: $log)"; return 1; }
    echo "$want" > "$stamp"
  fi
  _ptr_launch_stack
}

_ptr_setup || return 1 2>/dev/null || exit 1
# shellcheck disable=SC1091
source "$PTR_VENV/bin/activate"

# DDS discovery stays on 127.0.0.1 (Jazzy+ and Humble), and every run gets its own domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_LOCALHOST_ONLY=1
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
[ -n "${ROS_DISTRO:-}" ] || export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
