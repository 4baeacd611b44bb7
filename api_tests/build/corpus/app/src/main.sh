#!/bin/sh
case "$1" in
  --self-test) echo "self-test ok"; exit 0 ;;
  --health) exit 0 ;;
  --serve) echo "app @VERSION@ serving (env=$APP_ENV, deps=$(ls /opt/app/deps | tr '\n' ' '))" ;;
  *) echo "app @VERSION@: $*" ;;
esac
