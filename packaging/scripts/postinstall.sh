# postinstall: users and folders; an upgrade restarts a running service
# (try-restart: a stopped one stays stopped). A new install starts nothing.
action=$(mesh_action postinstall "$@")
case "$action" in
  install | upgrade)
    mesh_users
    mesh_dirs
    mesh_daemon_reload
    ;;
esac
if [ "$action" = upgrade ] && mesh_systemd; then
  systemctl try-restart "$SERVICE" || mesh_say "restarting $SERVICE failed: see systemctl status $SERVICE"
fi
exit 0
