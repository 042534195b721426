# Sourced by the scripts in this folder: makes .venv with the extras named in $SB_EXTRAS
# (default "test"; set but empty means the base install) and, for tests, redis-server and
# Chromium. Re-installs only when pyproject.toml changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
venv="$root/.venv"
extras="${SB_EXTRAS-test}"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
stamp="$venv/.installed-$extras-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/pip" install -q -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
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
export PATH="$venv/bin:$PATH"
