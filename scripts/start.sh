#!/bin/sh
# Start a Switchboard node with the open-file limit raised: every WebSocket takes one file
# descriptor, and the usual soft limit (1024, sometimes 65536) caps the connections a node
# can hold. This raises the soft limit to the hard one (which only root, systemd's
# LimitNOFILE= or Docker's --ulimit can raise), then runs `node dist/node.js` with the
# arguments given (the same flags as dist/node.js; NODE_OPTIONS and the environment pass
# through). NODE selects the node binary (default: `node` on PATH).
#
# Node itself also raises its soft limit to the hard one at start (on POSIX systems), so
# what decides the connections a node can hold is the hard limit: raise that as root
# (/etc/security/limits.conf, prlimit), with LimitNOFILE= under systemd, or with
# --ulimit nofile=N:N in Docker. The node logs a warning at start when its limit is below 65536.
#
#   scripts/start.sh --port 8080 --data-dir /var/lib/switchboard
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
hard=$(ulimit -Hn)
if ! ulimit -n "$hard" 2>/dev/null; then
  echo "start.sh: could not raise the open-file limit to $hard (it stays $(ulimit -n))" >&2
fi
exec "${NODE:-node}" "$here/../dist/node.js" "$@"
