# Shared by tools/run-broker and tools/run-tests: install what a fresh
# Debian 12 machine lacks, then configure and build into a build directory.

WHARF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WHARF_PACKAGES=(cmake g++ make pkg-config libuv1-dev libflatbuffers-dev flatbuffers-compiler
                liblmdb-dev doctest-dev libcli11-dev libssl-dev libcurl4-openssl-dev
                libhttp-parser-dev)
# Only the tests need these: curl drives the HTTP listener as a user would,
# promtool (package prometheus; its service is not started) checks /metrics.
WHARF_TEST_PACKAGES=(curl prometheus)

# ensure_packages PKG... : installs the missing ones (needs root or sudo).
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: missing packages ${missing[*]}; run as root" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

# build_wharf BUILD_DIR [cmake args...] [-- targets...]
build_wharf() {
  local dir="$1"; shift
  local cmake_args=() targets=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do cmake_args+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift && targets=("$@")
  cmake -S "$WHARF_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="${WHARF_BUILD_TYPE:-Release}" "${cmake_args[@]}" >/dev/null
  local jobs; jobs="$(nproc 2>/dev/null || echo 2)"
  if [ ${#targets[@]} -gt 0 ]; then
    cmake --build "$dir" -j "$jobs" --target "${targets[@]}"
  else
    cmake --build "$dir" -j "$jobs"
  fi
}
