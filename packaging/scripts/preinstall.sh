# preinstall: the users exist before the files arrive.
case "$(mesh_action preinstall "$@")" in
  install | upgrade) mesh_users ;;
esac
exit 0
