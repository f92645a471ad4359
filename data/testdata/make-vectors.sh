#!/usr/bin/env bash
# Regenerates the MPEG-TS test vectors in this directory (see README.md).
# Needs ffmpeg (built with libx264, libx265, libmp3lame, libopus) and python3.
# Output is deterministic for a given ffmpeg build (-bitexact, single thread).
set -euo pipefail
cd "$(dirname "$0")"

FF=(ffmpeg -hide_banner -loglevel error -y)
# 3 s of 320x240 test pattern at 25 fps, keyframe every 25 frames (1 s).
VIDEO_IN=(-f lavfi -i "testsrc=size=320x240:rate=25:duration=3")
AUDIO_IN=(-f lavfi -i "sine=frequency=440:sample_rate=48000:duration=3")
X264=(-c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p -g 25 -keyint_min 25 -sc_threshold 0 -b:v 150k -threads 1)
X265=(-c:v libx265 -preset veryfast -pix_fmt yuv420p -g 25 -keyint_min 25 -b:v 150k -x265-params "log-level=error:pools=1:frame-threads=1:scenecut=0")
COMMON=(-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -f mpegts)

# H.264 + AAC-LC (48 kHz stereo).
"${FF[@]}" "${VIDEO_IN[@]}" "${AUDIO_IN[@]}" "${X264[@]}" -c:a aac -b:a 64k -ac 2 "${COMMON[@]}" h264_aac.ts

# H.265 + AAC-LC.
"${FF[@]}" "${VIDEO_IN[@]}" "${AUDIO_IN[@]}" "${X265[@]}" -c:a aac -b:a 64k -ac 2 "${COMMON[@]}" h265_aac.ts

# H.264 + MP3 (48 kHz mono).
"${FF[@]}" "${VIDEO_IN[@]}" "${AUDIO_IN[@]}" "${X264[@]}" -c:a libmp3lame -b:a 64k -ac 1 "${COMMON[@]}" h264_mp3.ts

# AC-3 audio only (48 kHz stereo): PCR on the audio PID.
"${FF[@]}" "${AUDIO_IN[@]}" -c:a ac3 -b:a 96k -ac 2 "${COMMON[@]}" ac3.ts

# Opus audio only (stream type 0x06 + 'Opus' registration descriptor).
"${FF[@]}" "${AUDIO_IN[@]}" -c:a libopus -b:a 32k -ac 2 "${COMMON[@]}" opus.ts

# Program change: H.264+AAC on PIDs 0x100/0x101, then H.265+MP3 on 0x200/0x201
# (different PMT contents), simply concatenated.
"${FF[@]}" "${VIDEO_IN[@]}" "${AUDIO_IN[@]}" "${X265[@]}" -c:a libmp3lame -b:a 64k -ac 1 \
    -mpegts_start_pid 0x200 "${COMMON[@]}" /tmp/os-vectors-b.$$.ts
cat h264_aac.ts /tmp/os-vectors-b.$$.ts > program_change.ts
rm -f /tmp/os-vectors-b.$$.ts

# 33-bit wrap: timestamps start ~1 s before 2^33 ticks (95443.717 s) and wrap.
"${FF[@]}" "${VIDEO_IN[@]}" "${AUDIO_IN[@]}" "${X264[@]}" -c:a aac -b:a 64k -ac 2 \
    -output_ts_offset 95441.3 "${COMMON[@]}" wrap.ts

# Continuity errors: h264_aac.ts with 5 video packets (PID 0x100, not PES
# starts) dropped: at packets 10, 50, 90, 130 and 170 of that PID (or the next
# packet that does not start a PES).
python3 - h264_aac.ts cc_errors.ts <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
out, n, dropped, want = bytearray(), 0, 0, False
for i in range(0, len(data), 188):
    pkt = data[i:i + 188]
    pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
    if pid == 0x100:
        n += 1
        want = want or n % 40 == 10
        if want and not pkt[1] & 0x40 and dropped < 5:
            dropped, want = dropped + 1, False
            continue
    out += pkt
assert dropped == 5, dropped
open(sys.argv[2], "wb").write(out)
PY

# Garbage prefix: 1000 bytes (with stray 0x47 sync bytes) before h264_aac.ts,
# and 100 more bytes spliced in after packet 300.
python3 - h264_aac.ts garbage_prefix.ts <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
garbage = bytes((i * 37 + 11) % 256 if i % 50 else 0x47 for i in range(1000))
mid = bytes((i * 91 + 5) % 256 for i in range(100))
open(sys.argv[2], "wb").write(garbage + data[:300 * 188] + mid + data[300 * 188:])
PY

ls -l ./*.ts
