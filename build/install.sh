#!/usr/bin/env bash
# Install / uninstall open-streamer as a systemd service.
#
# Usage: build/install.sh [install|uninstall|status|help] [options]
# Run `build/install.sh help` for details.
set -euo pipefail

readonly NAME="open-streamer"
readonly SVC_USER="open-streamer"
readonly SVC_GROUP="open-streamer"
readonly GPU_GROUPS=(video render)

# Paths on the target system (prefixed with $DESTDIR when it is set).
readonly BIN_PATH="/usr/local/bin/open-streamer"
readonly UNIT_PATH="/etc/systemd/system/open-streamer.service"
readonly WANTS_LINK="/etc/systemd/system/multi-user.target.wants/open-streamer.service"
readonly CONF_DIR="/etc/open-streamer"
readonly CONF_PATH="/etc/open-streamer/config.yaml"
readonly DATA_DIR="/var/lib/open-streamer"
readonly DATA_SUBDIRS=(hls dash dvr)

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "${SCRIPT_DIR}/.." && pwd -P)"
readonly SCRIPT_DIR REPO_ROOT
readonly UNIT_SRC="${SCRIPT_DIR}/open-streamer.service"

PROG="$(basename -- "$0")"
readonly PROG

usage() {
    cat <<EOF
Usage: ${PROG} [install|uninstall|status|help] [options]

Commands:
  install     Install the binary, systemd unit, default config and data
              directories (default command).
  uninstall   Stop and disable the service, remove the binary and the unit.
              Keeps ${DATA_DIR} (data), ${CONF_PATH} (config)
              and the '${SVC_USER}' system user.
  status      Show what is installed and the service state.
  help        Show this help.

Options:
  --binary PATH   Binary to install. Default: the first that exists of
                  <repo>/bin/open-streamer, <repo>/target/release/open-streamer,
                  \$CARGO_TARGET_DIR/release/open-streamer.
  --config PATH   Default config to install when none is present yet.
                  Default: config/config.yaml in the repo.
  -n, --dry-run   Print what would be done; change nothing.
  -h, --help      Show this help.

Environment:
  DESTDIR         Stage the installation under this directory instead of /.
                  Only files are written: no user is created, nothing is
                  chown'ed and systemctl is not called.

Installed layout (under \$DESTDIR if set):
  ${BIN_PATH}               0755, replaced on every install
  ${UNIT_PATH}  0644, replaced on every install
  ${CONF_PATH}             0644, only if absent (never overwritten)
  ${DATA_DIR}/{hls,dash,dvr}      0750, owned by ${SVC_USER}
EOF
}

log() { printf '%s: %s\n' "${PROG}" "$*"; }
warn() { printf '%s: warning: %s\n' "${PROG}" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "${PROG}" "$*" >&2
    exit 1
}

# run CMD...: execute CMD, or only print it in dry-run mode.
run() {
    if ((DRY_RUN)); then
        printf '%s: [dry-run] would run:' "${PROG}"
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# ---------------------------------------------------------------------------
# Argument parsing
# ---------------------------------------------------------------------------
COMMAND=""
DRY_RUN=0
BINARY_ARG=""
CONFIG_SRC="${REPO_ROOT}/config/config.yaml"

parse_args() {
    while (($#)); do
        case "$1" in
            install | uninstall | status | help)
                [[ -z "${COMMAND}" ]] || die "more than one command given ('${COMMAND}' and '$1')"
                COMMAND="$1"
                ;;
            -n | --dry-run) DRY_RUN=1 ;;
            --binary)
                (($# >= 2)) || die "--binary needs a path"
                BINARY_ARG="$2"
                shift
                ;;
            --binary=*) BINARY_ARG="${1#--binary=}" ;;
            --config)
                (($# >= 2)) || die "--config needs a path"
                CONFIG_SRC="$2"
                shift
                ;;
            --config=*) CONFIG_SRC="${1#--config=}" ;;
            -h | --help) COMMAND="help" ;;
            *)
                usage >&2
                printf '\n%s: error: unknown argument: %s\n' "${PROG}" "$1" >&2
                exit 2
                ;;
        esac
        shift
    done
    COMMAND="${COMMAND:-install}"
}

# ---------------------------------------------------------------------------
# Mode: staged (DESTDIR), dry-run, or real system install
# ---------------------------------------------------------------------------
ROOT="" # prefix for every target path ("" = the real system)
STAGED=0

setup_mode() {
    local destdir="${DESTDIR:-}"
    if [[ -n "${destdir}" ]]; then
        [[ "${destdir}" == /* ]] || destdir="${PWD}/${destdir}"
        # Strip trailing slashes so "${ROOT}/etc" never contains "//".
        while [[ "${destdir}" == */ && "${destdir}" != "/" ]]; do
            destdir="${destdir%/}"
        done
        [[ "${destdir}" != "/" ]] ||
            die "DESTDIR=/ is the live system; unset DESTDIR for a real install"
        ROOT="${destdir}"
        STAGED=1
    fi
    # A real install (not staged, not dry-run) needs root.
    if ((!STAGED && !DRY_RUN)) && [[ "${COMMAND}" != "status" ]] && ((EUID != 0)); then
        die "'${COMMAND}' on the live system needs root (try: sudo ${0} ${COMMAND}), or set DESTDIR=<dir> to stage the files, or use --dry-run"
    fi
}

# True when system-level steps (user, chown, systemctl) must run.
system_steps() { ((!STAGED)); }

systemd_running() { [[ -d /run/systemd/system ]]; }

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
find_binary() {
    local candidate
    if [[ -n "${BINARY_ARG}" ]]; then
        [[ -f "${BINARY_ARG}" ]] || die "--binary ${BINARY_ARG}: no such file"
        [[ -x "${BINARY_ARG}" ]] || die "--binary ${BINARY_ARG}: not executable"
        printf '%s\n' "${BINARY_ARG}"
        return
    fi
    local candidates=("${REPO_ROOT}/bin/${NAME}" "${REPO_ROOT}/target/release/${NAME}")
    if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
        candidates+=("${CARGO_TARGET_DIR}/release/${NAME}")
    fi
    for candidate in "${candidates[@]}"; do
        if [[ -f "${candidate}" && -x "${candidate}" ]]; then
            printf '%s\n' "${candidate}"
            return
        fi
    done
    {
        printf '%s: error: no %s binary found; looked for:\n' "${PROG}" "${NAME}"
        printf '  %s\n' "${candidates[@]}"
        [[ -n "${CARGO_TARGET_DIR:-}" ]] || printf '  (%s/release/%s: CARGO_TARGET_DIR is not set)\n' "\$CARGO_TARGET_DIR" "${NAME}"
        printf 'Build it first (make build, or cargo build --release), or pass --binary PATH.\n'
    } >&2
    exit 1
}

# install_file SRC DEST MODE: copy SRC to DEST atomically (temp file + rename),
# so a running binary is never overwritten in place. Sets CHANGED=1 if DEST
# was missing or different.
CHANGED=0
install_file() {
    local src="$1" dest="$2" mode="$3"
    local dir tmp
    dir="$(dirname -- "${dest}")"
    if [[ -f "${dest}" ]] && cmp -s -- "${src}" "${dest}"; then
        log "up to date: ${dest}"
        run chmod "${mode}" "${dest}"
        return
    fi
    CHANGED=1
    log "installing ${src} -> ${dest} (mode ${mode})"
    ensure_dir "${dir}" 0755
    if ((DRY_RUN)); then
        run install -m "${mode}" "${src}" "${dest}"
        return
    fi
    tmp="$(mktemp "${dir}/.${NAME}.XXXXXX")"
    if ! install -m "${mode}" -- "${src}" "${tmp}" || ! mv -f -- "${tmp}" "${dest}"; then
        rm -f -- "${tmp}"
        die "failed to install ${dest}"
    fi
}

# ensure_dir DIR MODE: create DIR with MODE if missing; an existing directory
# (and its mode, which an admin may have changed) is left alone.
ensure_dir() {
    local dir="$1" mode="$2"
    if [[ -d "${dir}" ]]; then
        return
    fi
    [[ ! -e "${dir}" ]] || die "${dir} exists and is not a directory"
    run install -d -m "${mode}" "${dir}"
}

# ---------------------------------------------------------------------------
# System steps (real install only)
# ---------------------------------------------------------------------------
ensure_user() {
    if getent passwd "${SVC_USER}" >/dev/null; then
        log "system user '${SVC_USER}' exists"
    else
        local shell=/usr/sbin/nologin
        [[ -x "${shell}" ]] || shell=/sbin/nologin
        [[ -x "${shell}" ]] || shell=/bin/false
        local group_opt=(--user-group)
        if getent group "${SVC_GROUP}" >/dev/null; then
            group_opt=(--gid "${SVC_GROUP}")
        fi
        log "creating system user '${SVC_USER}'"
        run useradd --system --no-create-home --home-dir "${DATA_DIR}" \
            --shell "${shell}" "${group_opt[@]}" "${SVC_USER}"
    fi

    # GPU access for ffmpeg (/dev/dri/*, /dev/nvidia*).
    local g current=""
    if getent passwd "${SVC_USER}" >/dev/null; then
        current=" $(id -nG "${SVC_USER}") "
    fi
    for g in "${GPU_GROUPS[@]}"; do
        if ! getent group "${g}" >/dev/null; then
            log "group '${g}' does not exist; skipping"
        elif [[ "${current}" == *" ${g} "* ]]; then
            log "'${SVC_USER}' is already in group '${g}'"
        else
            log "adding '${SVC_USER}' to group '${g}'"
            run usermod -a -G "${g}" "${SVC_USER}"
        fi
    done
}

chown_data() {
    local d
    for d in "${DATA_DIR}" "${DATA_SUBDIRS[@]/#/${DATA_DIR}/}"; do
        run chown "${SVC_USER}:${SVC_GROUP}" "${d}"
    done
}

start_service() {
    local changed="$1"
    if ! systemd_running; then
        log "systemd is not running (no /run/systemd/system); skipping daemon-reload/enable/start."
        log "once systemd runs: systemctl daemon-reload && systemctl enable --now ${NAME}"
        return
    fi
    run systemctl daemon-reload
    run systemctl enable "${NAME}.service"
    if systemctl is-active --quiet "${NAME}.service"; then
        if ((changed)); then
            log "restarting ${NAME} (binary or unit changed)"
            run systemctl restart "${NAME}.service"
        else
            log "${NAME} is running and nothing changed; not restarting"
        fi
    else
        log "starting ${NAME}"
        run systemctl start "${NAME}.service"
    fi
    ((!DRY_RUN)) || return 0
    # Give a crash-on-start a moment to surface before reporting success.
    sleep 2
    if systemctl is-active --quiet "${NAME}.service"; then
        log "${NAME} is active"
    else
        systemctl --no-pager --lines=20 status "${NAME}.service" >&2 || true
        die "${NAME} failed to start; see: journalctl -u ${NAME} -e"
    fi
}

# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------
describe_mode() {
    if ((STAGED)); then
        log "staging into DESTDIR=${ROOT} (system user, chown and systemctl are skipped)"
    fi
    if ((DRY_RUN)); then
        log "dry run: nothing will be changed"
    fi
}

cmd_install() {
    local binary d any_changed=0
    binary="$(find_binary)"
    [[ -f "${UNIT_SRC}" ]] || die "unit file not found: ${UNIT_SRC}"
    describe_mode
    log "binary: ${binary}"

    if system_steps; then
        ensure_user
    else
        log "skipping system user '${SVC_USER}' and group setup (DESTDIR is set)"
    fi

    # Data directories (existing ones are left as they are).
    ensure_dir "${ROOT}/var/lib" 0755
    ensure_dir "${ROOT}${DATA_DIR}" 0750
    for d in "${DATA_SUBDIRS[@]}"; do
        ensure_dir "${ROOT}${DATA_DIR}/${d}" 0750
    done
    if system_steps; then
        chown_data
    fi

    # Binary and unit: replaced on every install.
    CHANGED=0
    install_file "${binary}" "${ROOT}${BIN_PATH}" 0755
    any_changed=$((any_changed | CHANGED))
    CHANGED=0
    install_file "${UNIT_SRC}" "${ROOT}${UNIT_PATH}" 0644
    any_changed=$((any_changed | CHANGED))

    # Config: installed only when absent; an admin's config is never touched.
    ensure_dir "${ROOT}${CONF_DIR}" 0755
    if [[ -e "${ROOT}${CONF_PATH}" ]]; then
        log "keeping existing config: ${ROOT}${CONF_PATH}"
    elif [[ -f "${CONFIG_SRC}" ]]; then
        log "installing default config: ${CONFIG_SRC} -> ${ROOT}${CONF_PATH}"
        run install -m 0644 "${CONFIG_SRC}" "${ROOT}${CONF_PATH}"
    else
        die "no config at ${ROOT}${CONF_PATH} and default config ${CONFIG_SRC} not found (pass --config PATH)"
    fi

    if system_steps; then
        start_service "${any_changed}"
    else
        log "skipping systemctl (DESTDIR is set)"
    fi
    if ((DRY_RUN)); then
        log "dry run complete; nothing was changed"
    else
        log "install complete"
    fi
}

cmd_uninstall() {
    describe_mode
    if system_steps; then
        if systemd_running; then
            if systemctl cat "${NAME}.service" >/dev/null 2>&1; then
                log "stopping and disabling ${NAME}"
                run systemctl disable --now "${NAME}.service"
            fi
        else
            log "systemd is not running; skipping stop/disable"
        fi
    else
        log "skipping systemctl (DESTDIR is set)"
    fi

    # An enablement symlink may exist even without running systemd
    # (e.g. enabled offline in an image build).
    if [[ -L "${ROOT}${WANTS_LINK}" ]]; then
        log "removing ${ROOT}${WANTS_LINK}"
        run rm -f "${ROOT}${WANTS_LINK}"
    fi
    local f
    for f in "${ROOT}${UNIT_PATH}" "${ROOT}${BIN_PATH}"; do
        if [[ -e "${f}" || -L "${f}" ]]; then
            log "removing ${f}"
            run rm -f "${f}"
        else
            log "already absent: ${f}"
        fi
    done

    if system_steps && systemd_running; then
        run systemctl daemon-reload
        run systemctl reset-failed "${NAME}.service" 2>/dev/null || true
    fi

    log "kept: ${ROOT}${DATA_DIR} (data), ${ROOT}${CONF_PATH} (config), user '${SVC_USER}'"
    log "to purge everything: rm -rf ${ROOT}${DATA_DIR} ${ROOT}${CONF_DIR}; userdel ${SVC_USER}"
    if ((DRY_RUN)); then
        log "dry run complete; nothing was changed"
    else
        log "uninstall complete"
    fi
}

cmd_status() {
    local ok=1 f version
    ((!STAGED)) || log "DESTDIR=${ROOT}"
    for f in "${ROOT}${BIN_PATH}" "${ROOT}${UNIT_PATH}"; do
        if [[ -e "${f}" ]]; then
            printf '  %-9s %s\n' "present" "${f}"
        else
            printf '  %-9s %s\n' "MISSING" "${f}"
            ok=0
        fi
    done
    for f in "${ROOT}${CONF_PATH}" "${ROOT}${DATA_DIR}"; do
        if [[ -e "${f}" ]]; then
            printf '  %-9s %s\n' "present" "${f}"
        else
            printf '  %-9s %s\n' "absent" "${f}"
        fi
    done
    if [[ -x "${ROOT}${BIN_PATH}" ]]; then
        if version="$(timeout 5 "${ROOT}${BIN_PATH}" --version 2>&1)"; then
            printf '  version   %s\n' "${version%%$'\n'*}"
        else
            printf '  version   (could not run %s --version)\n' "${ROOT}${BIN_PATH}"
        fi
    fi
    if ((!STAGED)); then
        if getent passwd "${SVC_USER}" >/dev/null; then
            printf '  user      %s (groups: %s)\n' "${SVC_USER}" "$(id -nG "${SVC_USER}")"
        else
            printf '  user      %s does not exist\n' "${SVC_USER}"
        fi
        if systemd_running; then
            printf '  enabled   %s\n' "$(systemctl is-enabled "${NAME}.service" 2>/dev/null || true)"
            printf '  active    %s\n' "$(systemctl is-active "${NAME}.service" 2>/dev/null || true)"
        else
            printf '  service   systemd is not running\n'
        fi
    fi
    if ((ok)); then
        log "${NAME} is installed"
        return 0
    fi
    log "${NAME} is not installed"
    return 1
}

main() {
    parse_args "$@"
    if [[ "${COMMAND}" == "help" ]]; then
        usage
        return 0
    fi
    setup_mode
    case "${COMMAND}" in
        install) cmd_install ;;
        uninstall) cmd_uninstall ;;
        status) cmd_status ;;
    esac
}

main "$@"
