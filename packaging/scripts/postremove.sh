# postremove: removal reloads systemd; purge (Debian) also deletes config and
# state. The system users stay (files elsewhere may still be theirs).
case "$(mesh_action postremove "$@")" in
  remove) mesh_daemon_reload ;;
  purge)
    for p in $PURGE_PATHS; do
      rm -rf "$p"
    done
    mesh_daemon_reload
    ;;
esac
exit 0
