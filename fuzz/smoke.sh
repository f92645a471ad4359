#!/usr/bin/env bash
# Runs every fuzz target declared in fuzz/Cargo.toml for N seconds each
# (default 20): ./fuzz/smoke.sh [seconds]
# Needs the nightly toolchain; installs cargo-fuzz if it is missing.
# Targets whose source file does not exist yet are skipped.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# The fuzz crate has its own target directory (fuzz/target).
unset CARGO_TARGET_DIR

# [[bin]] name/path pairs from Cargo.toml.
mapfile -t targets < <(awk '
    /^\[\[bin\]\]/ { name = ""; path = "" }
    /^name *=/ { gsub(/"/, "", $3); name = $3 }
    /^path *=/ { gsub(/"/, "", $3); path = $3; if (name != "") print name " " path }
' Cargo.toml)

failed=()
for entry in "${targets[@]}"; do
    name="${entry%% *}"
    path="${entry#* }"
    if [[ ! -f "$path" ]]; then
        echo "== $name: skipped ($path does not exist yet)"
        continue
    fi
    echo "== $name: ${secs}s"
    if ! cargo +nightly fuzz run "$name" -- -max_total_time="$secs" -print_final_stats=1; then
        failed+=("$name")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz smoke FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz smoke passed"
