# preremove: on removal (not on upgrade), stop and disable the service and
# remove the transparent proxy's capture rules; config and state stay.
if [ "$(mesh_action preremove "$@")" = remove ]; then
  if mesh_systemd; then
    systemctl stop "$SERVICE" || mesh_say "stopping $SERVICE failed"
    systemctl disable --quiet "$SERVICE" || true
  fi
  if [ "$TPROXY_CLEANUP" = yes ] && command -v mesh-agent >/dev/null 2>&1; then
    mesh-agent tproxy remove >/dev/null || mesh_say "mesh-agent tproxy remove failed: remove the capture rules by hand"
  fi
fi
exit 0
