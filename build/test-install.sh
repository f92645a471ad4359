#!/usr/bin/env bash
# Packaging test for build/install.sh and build/open-streamer.service.
#
# Everything happens in a temporary root (DESTDIR); the live system is never
# modified, and neither network access nor a running systemd is needed.
#
#   OPEN_STREAMER_BIN=path/to/open-streamer   binary to install (optional;
#                                              a small fake executable is used
#                                              otherwise: this tests layout)
#
# Exits non-zero and lists every failed check if anything is wrong.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "${SCRIPT_DIR}/.." && pwd -P)"
INSTALL="${SCRIPT_DIR}/install.sh"
UNIT_SRC="${SCRIPT_DIR}/open-streamer.service"
REPO_CONFIG="${REPO_ROOT}/config/config.yaml"

BIN_REL="usr/local/bin/open-streamer"
UNIT_REL="etc/systemd/system/open-streamer.service"
CONF_REL="etc/open-streamer/config.yaml"
DATA_REL="var/lib/open-streamer"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/open-streamer-install-test.XXXXXX")"
cleanup() { rm -rf -- "${TMP}"; }
trap cleanup EXIT

FAILED=()
CHECKS=0
ok() {
    CHECKS=$((CHECKS + 1))
    printf '  ok    %s\n' "$*"
}
fail() {
    CHECKS=$((CHECKS + 1))
    FAILED+=("$*")
    printf '  FAIL  %s\n' "$*" >&2
}
section() { printf '\n== %s\n' "$*"; }

# try CMD...: run CMD, store its exit code in RC and its output in OUT.
RC=0
OUT=""
try() {
    set +e
    OUT="$("$@" 2>&1)"
    RC=$?
    set -e
}
show_output() { printf '%s\n' "${OUT}" | sed 's/^/        | /' >&2; }

expect_success() { # DESCRIPTION (after try)
    if ((RC == 0)); then ok "$1"; else
        fail "$1 (exit ${RC})"
        show_output
    fi
}
expect_failure() { # DESCRIPTION (after try)
    if ((RC != 0)); then ok "$1"; else
        fail "$1 (exited 0, expected failure)"
        show_output
    fi
}
expect_output() { # NEEDLE DESCRIPTION (after try)
    if [[ "${OUT}" == *"$1"* ]]; then ok "$2"; else
        fail "$2 (output lacks '$1')"
        show_output
    fi
}

assert_file() { # PATH MODE [SAME_AS]
    local path="$1" mode="$2" same_as="${3:-}" actual
    if [[ ! -f "${path}" ]]; then
        fail "missing file ${path#"${TMP}"/}"
        return
    fi
    actual="$(stat -c '%a' -- "${path}")"
    if [[ "${actual}" == "${mode}" ]]; then
        ok "${path#"${TMP}"/} exists, mode ${mode}"
    else
        fail "${path#"${TMP}"/} has mode ${actual}, expected ${mode}"
    fi
    if [[ -n "${same_as}" ]]; then
        if cmp -s -- "${path}" "${same_as}"; then
            ok "${path#"${TMP}"/} matches ${same_as#"${TMP}"/}"
        else
            fail "${path#"${TMP}"/} differs from ${same_as#"${TMP}"/}"
        fi
    fi
}
assert_dir() { # PATH MODE
    local path="$1" mode="$2" actual
    if [[ ! -d "${path}" ]]; then
        fail "missing directory ${path#"${TMP}"/}"
        return
    fi
    actual="$(stat -c '%a' -- "${path}")"
    if [[ "${actual}" == "${mode}" ]]; then
        ok "${path#"${TMP}"/}/ exists, mode ${mode}"
    else
        fail "${path#"${TMP}"/}/ has mode ${actual}, expected ${mode}"
    fi
}
assert_absent() { # PATH
    if [[ -e "$1" || -L "$1" ]]; then
        fail "${1#"${TMP}"/} still exists"
    else
        ok "${1#"${TMP}"/} is absent"
    fi
}

# snapshot DIR [EXCLUDE_REGEX]: type, mode, path, link target and content hash
# of everything under DIR, so two snapshots differ on any change.
snapshot() {
    local dir="$1" exclude="${2:-^$}"
    [[ -d "${dir}" ]] || {
        echo "<no ${dir}>"
        return
    }
    (
        cd -- "${dir}"
        find . -mindepth 1 -printf '%y %m %p -> %l\n'
        find . -type f -exec sha256sum -- {} +
    ) | grep -Ev -- "${exclude}" | LC_ALL=C sort
}

# ---------------------------------------------------------------------------
section "prerequisites"
# ---------------------------------------------------------------------------
[[ -f "${INSTALL}" ]] || {
    echo "FAIL: ${INSTALL} not found" >&2
    exit 1
}
if [[ -x "${INSTALL}" ]]; then ok "install.sh is executable"; else fail "install.sh is not executable (chmod +x build/install.sh)"; fi
if [[ -f "${UNIT_SRC}" ]]; then ok "unit file present"; else fail "unit file ${UNIT_SRC} missing"; fi

HAVE_ANALYZE=1
if command -v systemd-analyze >/dev/null 2>&1; then
    ok "systemd-analyze found: $(command -v systemd-analyze)"
else
    HAVE_ANALYZE=0
    fail "systemd-analyze not found; it is required to verify the unit (install it: apt-get install -y systemd)"
fi

# Binary: the real one if given, else a fake executable.
SRC="${TMP}/src"
mkdir -p -- "${SRC}"
if [[ -n "${OPEN_STREAMER_BIN:-}" ]]; then
    if [[ -f "${OPEN_STREAMER_BIN}" && -x "${OPEN_STREAMER_BIN}" ]]; then
        BIN="${OPEN_STREAMER_BIN}"
        ok "using binary from OPEN_STREAMER_BIN=${BIN}"
    else
        echo "FAIL: OPEN_STREAMER_BIN=${OPEN_STREAMER_BIN} is not an executable file" >&2
        exit 1
    fi
else
    BIN="${SRC}/open-streamer"
    printf '#!/bin/sh\necho "open-streamer 0.0.0-test"\n' >"${BIN}"
    chmod 0755 -- "${BIN}"
    ok "using a fake binary (set OPEN_STREAMER_BIN to install a real one)"
fi
# A second, different "build" to check that a re-install replaces the binary.
BIN2="${SRC}/open-streamer-v2"
cp -- "${BIN}" "${BIN2}"
printf '\n# v2\n' >>"${BIN2}"
chmod 0755 -- "${BIN2}"

# Default config: the repo's, or a fixture if it has not been written yet.
CONFIG_ARGS=()
CONFIG_SRC="${REPO_CONFIG}"
if [[ -f "${REPO_CONFIG}" ]]; then
    ok "using repo default config ${REPO_CONFIG#"${REPO_ROOT}"/}"
else
    CONFIG_SRC="${SRC}/config.yaml"
    printf '# test fixture config\n' >"${CONFIG_SRC}"
    CONFIG_ARGS=(--config "${CONFIG_SRC}")
    printf '  NOTE  %s not found; installing a fixture config instead\n' "${REPO_CONFIG#"${REPO_ROOT}"/}"
fi

# Never let the installer see a DESTDIR from the caller's environment.
unset DESTDIR

# Run install.sh staged into ROOT. Runs from an unrelated cwd on purpose.
inst() { # ROOT ARGS...
    local root="$1"
    shift
    (cd / && DESTDIR="${root}" "${INSTALL}" "$@")
}

# ---------------------------------------------------------------------------
section "install into a fresh DESTDIR"
# ---------------------------------------------------------------------------
ROOT="${TMP}/root"
try inst "${ROOT}" install --binary "${BIN}" "${CONFIG_ARGS[@]}"
expect_success "install exits 0"
assert_file "${ROOT}/${BIN_REL}" 755 "${BIN}"
assert_file "${ROOT}/${UNIT_REL}" 644 "${UNIT_SRC}"
assert_file "${ROOT}/${CONF_REL}" 644 "${CONFIG_SRC}"
assert_dir "${ROOT}/${DATA_REL}" 750
for d in hls dash dvr; do
    assert_dir "${ROOT}/${DATA_REL}/${d}" 750
done
stray="$(find "${ROOT}" -name '.open-streamer.*' -print)"
if [[ -z "${stray}" ]]; then ok "no leftover temp files"; else fail "leftover temp files: ${stray}"; fi
try inst "${ROOT}" status
expect_success "status reports installed (exit 0)"

# ---------------------------------------------------------------------------
section "re-install is idempotent and keeps the admin's config and data"
# ---------------------------------------------------------------------------
printf '\n# edited by the admin\n' >>"${ROOT}/${CONF_REL}"
cp -- "${ROOT}/${CONF_REL}" "${TMP}/admin-config.yaml"
echo segment >"${ROOT}/${DATA_REL}/hls/seg0.ts"
echo '{}' >"${ROOT}/${DATA_REL}/streams.json"
chmod 0755 -- "${ROOT}/${DATA_REL}/hls" # admin tweak: must survive
EXCLUDE="(${BIN_REL}|${UNIT_REL})\$"
before="$(snapshot "${ROOT}" "${EXCLUDE}")"

try inst "${ROOT}" install --binary "${BIN}" "${CONFIG_ARGS[@]}"
expect_success "second install exits 0"
assert_file "${ROOT}/${CONF_REL}" 644 "${TMP}/admin-config.yaml"
after="$(snapshot "${ROOT}" "${EXCLUDE}")"
if [[ "${before}" == "${after}" ]]; then
    ok "second install changed nothing besides binary and unit"
else
    fail "second install changed files besides binary and unit:"
    diff <(printf '%s\n' "${before}") <(printf '%s\n' "${after}") | sed 's/^/        /' >&2 || true
fi

try inst "${ROOT}" install --binary "${BIN2}" "${CONFIG_ARGS[@]}"
expect_success "install of a new build exits 0"
assert_file "${ROOT}/${BIN_REL}" 755 "${BIN2}"
after="$(snapshot "${ROOT}" "${EXCLUDE}")"
if [[ "${before}" == "${after}" ]]; then ok "new build replaced only the binary"; else fail "installing a new build changed other files"; fi

# ---------------------------------------------------------------------------
section "dry-run writes nothing"
# ---------------------------------------------------------------------------
DRY="${TMP}/dry"
try inst "${DRY}" install --dry-run --binary "${BIN}" "${CONFIG_ARGS[@]}"
expect_success "install --dry-run into an empty DESTDIR exits 0"
expect_output "[dry-run]" "dry-run prints what it would do"
if [[ ! -e "${DRY}" ]]; then ok "dry-run created nothing"; else
    fail "dry-run wrote files:"
    find "${DRY}" | sed 's/^/        /' >&2
fi

before="$(snapshot "${ROOT}")"
try inst "${ROOT}" install --dry-run --binary "${BIN}" "${CONFIG_ARGS[@]}"
expect_success "install --dry-run over an existing install exits 0"
try inst "${ROOT}" uninstall --dry-run
expect_success "uninstall --dry-run exits 0"
if [[ "${before}" == "$(snapshot "${ROOT}")" ]]; then ok "dry-runs left the existing install unchanged"; else fail "a dry-run changed the existing install"; fi

# Without DESTDIR, --dry-run addresses the live system: it must only print.
# Shims for every mutating command record any call that slips through.
SHIMS="${TMP}/shims"
CALLS="${TMP}/shim-calls.log"
mkdir -p -- "${SHIMS}"
: >"${CALLS}"
for c in useradd usermod groupadd userdel systemctl chown chmod chgrp install cp mv rm mkdir ln mktemp touch; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 1\n' "${c}" "${CALLS}" >"${SHIMS}/${c}"
    chmod 0755 -- "${SHIMS}/${c}"
done
# Read-only systemctl queries are allowed (answered as "not active").
cat >"${SHIMS}/systemctl" <<EOF
#!/bin/sh
case "\$1" in is-active | is-enabled | is-failed | cat | show | status) exit 3 ;; esac
echo "systemctl \$*" >>"${CALLS}"
exit 1
EOF
try env PATH="${SHIMS}:${PATH}" "${INSTALL}" install --dry-run --binary "${BIN}" "${CONFIG_ARGS[@]}"
expect_success "install --dry-run on the live system exits 0"
expect_output "[dry-run]" "live dry-run prints planned actions"
try env PATH="${SHIMS}:${PATH}" "${INSTALL}" uninstall --dry-run
expect_success "uninstall --dry-run on the live system exits 0"
if [[ ! -s "${CALLS}" ]]; then ok "live dry-runs executed no mutating command"; else
    fail "live dry-runs executed mutating commands:"
    sed 's/^/        /' "${CALLS}" >&2
fi

# ---------------------------------------------------------------------------
section "uninstall keeps data and config"
# ---------------------------------------------------------------------------
mkdir -p -- "${ROOT}/etc/systemd/system/multi-user.target.wants"
ln -s /etc/systemd/system/open-streamer.service \
    "${ROOT}/etc/systemd/system/multi-user.target.wants/open-streamer.service"
try inst "${ROOT}" uninstall
expect_success "uninstall exits 0"
assert_absent "${ROOT}/${BIN_REL}"
assert_absent "${ROOT}/${UNIT_REL}"
assert_absent "${ROOT}/etc/systemd/system/multi-user.target.wants/open-streamer.service"
assert_file "${ROOT}/${CONF_REL}" 644 "${TMP}/admin-config.yaml"
assert_file "${ROOT}/${DATA_REL}/hls/seg0.ts" 644
assert_file "${ROOT}/${DATA_REL}/streams.json" 644
for d in dash dvr; do
    assert_dir "${ROOT}/${DATA_REL}/${d}" 750
done
try inst "${ROOT}" status
expect_failure "status reports not installed (non-zero exit)"
try inst "${ROOT}" uninstall
expect_success "second uninstall exits 0"

# ---------------------------------------------------------------------------
section "binary discovery and argument errors"
# ---------------------------------------------------------------------------
try inst "${TMP}/err" install --binary "${TMP}/does-not-exist" "${CONFIG_ARGS[@]}"
expect_failure "missing --binary fails"
expect_output "no such file" "missing --binary error names the problem"

# A repo copy without any build output.
FAKE_REPO="${TMP}/repo"
mkdir -p -- "${FAKE_REPO}/build"
cp -- "${INSTALL}" "${UNIT_SRC}" "${FAKE_REPO}/build/"
FAKE_INSTALL="${FAKE_REPO}/build/install.sh"
try env -u CARGO_TARGET_DIR DESTDIR="${TMP}/err" "${FAKE_INSTALL}" install --config "${CONFIG_SRC}"
expect_failure "install without any binary fails"
expect_output "no open-streamer binary found" "missing binary error is clear"
if [[ ! -e "${TMP}/err" ]]; then ok "failed installs wrote nothing"; else fail "failed install wrote into DESTDIR"; fi

mkdir -p -- "${TMP}/cargo-target/release"
cp -- "${BIN}" "${TMP}/cargo-target/release/open-streamer"
try env CARGO_TARGET_DIR="${TMP}/cargo-target" DESTDIR="${TMP}/r1" "${FAKE_INSTALL}" install --config "${CONFIG_SRC}"
expect_success "binary found in \$CARGO_TARGET_DIR/release"
assert_file "${TMP}/r1/${BIN_REL}" 755 "${BIN}"

mkdir -p -- "${FAKE_REPO}/target/release"
cp -- "${BIN2}" "${FAKE_REPO}/target/release/open-streamer"
try env CARGO_TARGET_DIR="${TMP}/cargo-target" DESTDIR="${TMP}/r2" "${FAKE_INSTALL}" install --config "${CONFIG_SRC}"
expect_success "binary found in target/release"
assert_file "${TMP}/r2/${BIN_REL}" 755 "${BIN2}"

mkdir -p -- "${FAKE_REPO}/bin"
printf '#!/bin/sh\necho bin\n' >"${FAKE_REPO}/bin/open-streamer"
chmod 0755 -- "${FAKE_REPO}/bin/open-streamer"
try env CARGO_TARGET_DIR="${TMP}/cargo-target" DESTDIR="${TMP}/r3" "${FAKE_INSTALL}" install --config "${CONFIG_SRC}"
expect_success "bin/open-streamer preferred over other locations"
assert_file "${TMP}/r3/${BIN_REL}" 755 "${FAKE_REPO}/bin/open-streamer"

try inst "${TMP}/err" install --bogus-flag
expect_failure "unknown option is rejected"
try "${INSTALL}" help
expect_success "help exits 0"
expect_output "uninstall" "help describes the commands"

# ---------------------------------------------------------------------------
section "unit file content"
# ---------------------------------------------------------------------------
required=(
    "Type=exec"
    "User=open-streamer"
    "Group=open-streamer"
    "WorkingDirectory=/var/lib/open-streamer"
    "ExecStart=/usr/local/bin/open-streamer --config /etc/open-streamer/config.yaml"
    "Environment=OPEN_STREAMER_STORAGE_JSON_DIR=/var/lib/open-streamer"
    "Environment=OPEN_STREAMER_PUBLISHER_HLS_DIR=/var/lib/open-streamer/hls"
    "Environment=OPEN_STREAMER_PUBLISHER_DASH_DIR=/var/lib/open-streamer/dash"
    "NoNewPrivileges=yes"
    "ProtectSystem=strict"
    "ReadWritePaths=/var/lib/open-streamer"
    "PrivateTmp=yes"
    "ProtectHome=yes"
    "ProtectKernelTunables=yes"
    "ProtectKernelModules=yes"
    "ProtectControlGroups=yes"
    "RestrictSUIDSGID=yes"
    "LockPersonality=yes"
    "RestrictNamespaces=yes"
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"
    "Restart=on-failure"
    "RestartSec=5"
    "TimeoutStopSec=30"
    "KillSignal=SIGTERM"
    "LimitNOFILE=65536"
    "After=network-online.target"
    "Wants=network-online.target"
    "WantedBy=multi-user.target"
)
missing=()
for line in "${required[@]}"; do
    grep -qxF -- "${line}" "${UNIT_SRC}" || missing+=("${line}")
done
if ((${#missing[@]} == 0)); then ok "unit has all ${#required[@]} required settings"; else
    fail "unit lacks: ${missing[*]}"
fi
# GPU groups are added by the installer when they exist; devices must stay visible.
for bad in SupplementaryGroups PrivateDevices DeviceAllow ProtectClock; do
    if grep -qE "^${bad}=" "${UNIT_SRC}"; then
        fail "unit must not set ${bad}= (would break GPU access or fail on hosts without the groups)"
    else
        ok "unit does not set ${bad}="
    fi
done

# ---------------------------------------------------------------------------
section "systemd-analyze verify"
# ---------------------------------------------------------------------------
# verify_root ROOT: verify the unit installed in ROOT. ExecStart= is resolved
# inside ROOT, and the distribution units it depends on are copied there.
# `systemd-analyze verify` exits 0 on some problems (unknown keys, bad values)
# and only prints a warning, so any diagnostic naming the unit counts as an
# error too.
SYSTEM_UNITS=""
for d in /usr/lib/systemd/system /lib/systemd/system; do
    if [[ -f "${d}/multi-user.target" ]]; then
        SYSTEM_UNITS="${d}"
        break
    fi
done
verify_root() {
    local root="$1"
    mkdir -p -- "${root}/usr/lib/systemd"
    [[ -d "${root}/usr/lib/systemd/system" ]] || cp -a -- "${SYSTEM_UNITS}" "${root}/usr/lib/systemd/system"
    try systemd-analyze verify --man=no --generators=no --root="${root}" open-streamer.service
    if ((RC == 0)) && grep -q 'open-streamer' <<<"${OUT}"; then
        RC=99
        OUT="${OUT}"$'\n''(systemd-analyze exited 0 but reported the problems above; treated as failure)'
    fi
}
put_unit() { # ROOT SED-EXPR: install a modified copy of the unit into ROOT
    sed -e "$2" -- "${UNIT_SRC}" >"$1/${UNIT_REL}"
    if cmp -s -- "$1/${UNIT_REL}" "${UNIT_SRC}"; then
        fail "test bug: sed '$2' did not change the unit"
    fi
}

if ((HAVE_ANALYZE)) && [[ -z "${SYSTEM_UNITS}" ]]; then
    fail "no distribution unit directory (/usr/lib/systemd/system) found; reinstall systemd: apt-get install -y systemd"
elif ((HAVE_ANALYZE)); then
    VROOT="${TMP}/verify-root"
    try inst "${VROOT}" install --binary "${BIN}" "${CONFIG_ARGS[@]}"
    expect_success "staged install for verify"

    verify_root "${VROOT}"
    expect_success "systemd-analyze verify passes on the installed unit"
    [[ -z "${OUT}" ]] || show_output

    # Negative checks: each broken variant must be rejected.
    put_unit "${VROOT}" 's#^ExecStart=/usr/local/bin/open-streamer #ExecStart=/usr/local/bin/open-streamer-missing #'
    verify_root "${VROOT}"
    expect_failure "verify rejects a unit whose ExecStart binary does not exist"

    put_unit "${VROOT}" 's#^Restart=on-failure$#Restart=sometimes#'
    verify_root "${VROOT}"
    expect_failure "verify rejects an invalid value (Restart=sometimes)"

    put_unit "${VROOT}" 's#^NoNewPrivileges=yes$#NoNewPrivilege=yes#'
    verify_root "${VROOT}"
    expect_failure "verify rejects an unknown directive (NoNewPrivilege=)"

    put_unit "${VROOT}" 's#^\[Service\]$#[Servce]#'
    verify_root "${VROOT}"
    expect_failure "verify rejects a misspelt section ([Servce])"

    cp -- "${UNIT_SRC}" "${VROOT}/${UNIT_REL}"
    rm -f -- "${VROOT}/${BIN_REL}"
    verify_root "${VROOT}"
    expect_failure "verify rejects the unit when the binary is not installed"
fi

# ---------------------------------------------------------------------------
section "result"
# ---------------------------------------------------------------------------
if ((${#FAILED[@]})); then
    printf '%d of %d checks FAILED:\n' "${#FAILED[@]}" "${CHECKS}" >&2
    printf '  - %s\n' "${FAILED[@]}" >&2
    exit 1
fi
printf 'all %d checks passed\n' "${CHECKS}"
