#!/usr/bin/env bash
# Make sure the programs the test suite drives are installed:
# ffmpeg/ffprobe (media vectors and playability checks), chromium (Swagger UI
# and browser players), systemd-analyze (unit file check).
# As root on Debian/Ubuntu they are installed with apt-get; otherwise the
# exact install command is printed and the script fails.
set -euo pipefail

declare -A package_of=(
  [ffmpeg]=ffmpeg
  [ffprobe]=ffmpeg
  [chromium]=chromium
  [systemd-analyze]=systemd
)

missing=()
for cmd in ffmpeg ffprobe chromium systemd-analyze; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${package_of[$cmd]}")
done
# Fonts so that screenshots of pages render text.
if [ ! -d /usr/share/fonts/truetype/dejavu ]; then
  missing+=(fonts-dejavu-core)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
install_cmd="apt-get install -y --no-install-recommends ${packages[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  exit 0
fi
echo "test-deps: missing ${packages[*]}; install them with:" >&2
echo "  sudo $install_cmd" >&2
exit 1
