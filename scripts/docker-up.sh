#!/usr/bin/env bash
# docker-up.sh: make a Docker daemon reachable for denv.
#
# - If `docker info` already works, exit 0 immediately (fast, idempotent).
# - Otherwise, as root only: install Debian's docker.io if dockerd is
#   missing, start dockerd detached in the background (log in
#   /tmp/denv-dockerd.log) and wait up to 60 s for `docker info` to answer.
#
# Environment: DENV_DOCKERD_LOG overrides the log path.
set -euo pipefail

log="${DENV_DOCKERD_LOG:-/tmp/denv-dockerd.log}"
deadline_s=60

if docker info >/dev/null 2>&1; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "docker-up: no Docker daemon reachable and not root: start dockerd yourself (or run this script as root)" >&2
	exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
	echo "docker-up: dockerd missing, installing Debian's docker.io" >&2
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io
fi

# Only start a daemon if none is running already (it may just be slow to answer).
if ! pgrep -x dockerd >/dev/null 2>&1; then
	echo "docker-up: starting dockerd (log: $log)" >&2
	# setsid + nohup: a new session, so the daemon survives this script and its terminal.
	setsid nohup dockerd >>"$log" 2>&1 </dev/null &
fi

end=$((SECONDS + deadline_s))
while [ "$SECONDS" -lt "$end" ]; do
	if docker info >/dev/null 2>&1; then
		echo "docker-up: daemon ready" >&2
		exit 0
	fi
	sleep 0.2
done

echo "docker-up: dockerd did not answer within ${deadline_s}s; see $log" >&2
exit 1
