#!/usr/bin/env bash
# The workspace tests, with every failure repeated at the end of the output:
# a CI log is often read from its tail, and cargo prints a failing test's
# panic message far above the final "N targets failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."

log="$(mktemp "${TMPDIR:-/tmp}/open-streamer-tests.XXXXXX")"
trap 'rm -f "$log"' EXIT

"${CARGO:-cargo}" test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo
  echo "==================== failing tests (repeated from above) ===================="
  # A panic message and the lines that follow it, up to the backtrace.
  awk '
    /^thread .* panicked at / { show = 1; n = 0 }
    show && (/^stack backtrace:/ || /^note: run with/ || n > 25) { show = 0; print "----" }
    show { print; n++ }
    /^     Running / { current = $0 }
    /^test .* \.\.\. FAILED$/ { print current ": " $0 }
  ' "$log"
  echo "============================================================================="
fi
exit "$status"
