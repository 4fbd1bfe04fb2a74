# Shared by the four maintainer scripts of mesh-agent and mesh-controlplane
# (POSIX sh). The build puts, in each script: a generated header (the package's
# names: PACKAGE, SERVICE, PURGE_PATHS, TPROXY_CLEANUP, mesh_users, mesh_dirs),
# then this file, then the script of the phase. One logic for .deb and .rpm:
# mesh_action maps dpkg's action words and rpm's instance counts to one word.

# mesh_action PHASE ARGS...: what this run of a script is part of:
#   install, upgrade, remove, purge, or none (dpkg's abort-*, failed-upgrade, ...).
# dpkg: preinst install|upgrade; postinst configure [OLD-VERSION]; prerm remove|upgrade;
#       postrm remove|purge|upgrade.
# rpm:  %pre/%post 1 = install, 2+ = upgrade; %preun/%postun 0 = erase, 1+ = upgrade.
mesh_action() {
  phase=$1
  shift
  arg=${1:-}
  case "$arg" in
    '' | *[!0-9]*) ;;
    *)
      case "$phase" in
        preinstall | postinstall) if [ "$arg" -ge 2 ]; then echo upgrade; else echo install; fi ;;
        *) if [ "$arg" -ge 1 ]; then echo upgrade; else echo remove; fi ;;
      esac
      return 0
      ;;
  esac
  case "$phase:$arg" in
    preinstall:install) echo install ;;
    preinstall:upgrade) echo upgrade ;;
    postinstall:configure) if [ -n "${2:-}" ]; then echo upgrade; else echo install; fi ;;
    preremove:remove | postremove:remove) echo remove ;;
    preremove:upgrade | postremove:upgrade) echo upgrade ;;
    postremove:purge) echo purge ;;
    *) echo none ;;
  esac
}

mesh_say() {
  echo "$PACKAGE: $*" >&2
}

# mesh_user NAME HOME COMMENT: a system user and its group, unless it exists.
mesh_user() {
  if getent passwd "$1" >/dev/null 2>&1; then
    return 0
  fi
  if ! getent group "$1" >/dev/null 2>&1; then
    groupadd --system "$1"
  fi
  nologin=/usr/sbin/nologin
  [ -x "$nologin" ] || nologin=/sbin/nologin
  useradd --system --gid "$1" --home-dir "$2" --no-create-home --shell "$nologin" --comment "$3" "$1"
}

# mesh_dir PATH OWNER MODE: a folder owned by OWNER (and its group), unless it exists.
mesh_dir() {
  if [ ! -d "$1" ]; then
    install -d -m "$3" -o "$2" -g "$2" "$1"
  fi
}

mesh_systemd() {
  [ -d /run/systemd/system ]
}

mesh_daemon_reload() {
  if mesh_systemd; then
    systemctl daemon-reload || mesh_say "systemctl daemon-reload failed"
  fi
}
