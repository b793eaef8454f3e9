#!/usr/bin/env bash
# Run a command in a fresh network namespace that has only loopback, so nothing the
# local servers do (the OpenClaw gateway looks up an outside host) leaves the machine.
# Needs root (or unprivileged user namespaces); otherwise runs the command as is.
set -euo pipefail
if [ "${OPENCLAW_SAAS_NO_NETNS:-}" = 1 ]; then exec "$@"; fi
if unshare -n true 2>/dev/null; then
  exec unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$@"
fi
echo "in-netns: cannot create a network namespace here; running without isolation" >&2
exec "$@"
