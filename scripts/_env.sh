# Sourced by the scripts in this folder. Builds virtualenvs from uv.lock, the exact versions of
# every package, so a fresh machine installs what the last green run installed:
#   sb_sync ENV PYTHON [uv sync options]   ENV: the folder (.venv, .venv-django6, ...)
# uv itself is pinned here and installed with pip into .cache/ (the machine's python3 is enough).
# Interpreters come from pyenv (or PATH); nothing is downloaded but packages.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
UV_VERSION=0.13.9
export UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_NO_PROGRESS=1
uv_home="$root/.cache/uv-$UV_VERSION"
if [ ! -x "$uv_home/bin/uv" ]; then
  echo "installing uv $UV_VERSION into .cache/…" >&2
  "${PYTHON:-python3}" -m venv "$uv_home"
  "$uv_home/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
export SB_UV="$uv_home/bin/uv"

sb_python() {
  # The interpreter for a minor version: pyenv's, else pythonX.Y on PATH. Fails saying so.
  local version="$1" candidate
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/python"$version"; do
    [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
  if candidate="$(command -v "python$version" 2>/dev/null)" && "$candidate" -V >/dev/null 2>&1; then
    echo "$candidate"
    return
  fi
  echo "no Python $version here: install it (pyenv install $version) or put python$version on PATH" >&2
  return 1
}

sb_sync() {
  # sb_sync ENV PYTHON [uv sync options]: ENV made (or brought back) to exactly what uv.lock says.
  local env="$1" version="$2" python
  shift 2
  python="$(sb_python "$version")"
  UV_PROJECT_ENVIRONMENT="$root/$env" "$SB_UV" sync --locked --quiet --python "$python" "$@"
}

ensure_redis_server() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server (apt-get)…" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
}
ensure_h2_clients() {
  # curl (--http2) for the HTTP/2 tests; h2load (nghttp2-client) for bench/server_h2.py.
  if ! command -v curl >/dev/null 2>&1 || ! command -v h2load >/dev/null 2>&1; then
    echo "installing curl and nghttp2-client (apt-get)…" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl nghttp2-client >/dev/null
  fi
}
ensure_browser() {
  # Headless Chromium and its WebDriver for the browser tests (Selenium).
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "installing chromium and chromium-driver (apt-get)…" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
}
