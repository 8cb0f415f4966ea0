#!/bin/sh
# As the official image: other containers may connect (no protected mode), runs as redis.
set -e
if [ "$1" = "redis-server" ]; then
  shift
  set -- redis-server --protected-mode no "$@"
fi
chown -R redis:redis /data
exec runuser -u redis -- "$@"
