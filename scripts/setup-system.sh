#!/usr/bin/env bash
# Install the machine-level tools the project needs, from Debian's packages, if missing:
# a JDK and Maven (Kafka jars), PostgreSQL server binaries, npm (OpenClaw), iproute2 and
# util-linux (loopback-only network namespace). Idempotent; needs root to install.
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v npm >/dev/null || need+=(npm)
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
# a real Docker engine for the provisioner's tests (dockerd on a private socket) and the
# static busybox of the locally built gateway image (no registry is reachable)
command -v dockerd >/dev/null || need+=(docker.io)
command -v busybox >/dev/null || need+=(busybox-static)
command -v promtool >/dev/null || need+=(prometheus)  # tests/ops: promtool and a real Prometheus
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
command -v wrk >/dev/null || need+=(wrk)  # make bench: HTTP load
command -v swaks >/dev/null || need+=(swaks)  # tests/ingress/smtp: a real SMTP client
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ${#need[@]} -eq 0 ]; then
  echo "setup-system: java, mvn, npm, postgresql, ip, unshare, dockerd, busybox present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-system: missing ${need[*]}; install them (Debian: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "setup-system: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The prometheus package enables a system service; the tests start their own Prometheus.
if [[ " ${need[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
