#!/usr/bin/env bash
# Install the peers the benchmark suite compares against (run by `make bench`):
#   nginx + libnginx-mod-rtmp  (Debian)       RTMP fan-out/ingest, HLS serving
#   wrk                        (Debian)       HTTP load generator
#   xiu                        (cargo install) Rust live server, into .tools/xiu
#                              needs cmake, pkg-config and libopus-dev (Debian)
# Everything else the benchmarks drive (ffmpeg, ...) comes from build/test-deps.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/build/test-deps.sh"

missing=()
for p in cmake pkg-config libopus-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench-peers: missing ${missing[*]}; install them with: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "bench-peers: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# xiu: pinned version, built once (≈ 10 minutes on 2 cores), kept in .tools/xiu.
XIU_VERSION=0.14.0
xiu="$root/.tools/xiu"
if [ -x "$xiu/bin/xiu" ] && [ "$(cat "$xiu/VERSION" 2>/dev/null)" = "$XIU_VERSION" ]; then
  exit 0
fi
echo "bench-peers: building xiu $XIU_VERSION into $xiu (takes several minutes)"
mkdir -p "$xiu"
cargo install xiu --version "$XIU_VERSION" --locked --root "$xiu" --target-dir "$xiu/target"
rm -rf "$xiu/target"
echo "$XIU_VERSION" > "$xiu/VERSION"
"$xiu/bin/xiu" -V
