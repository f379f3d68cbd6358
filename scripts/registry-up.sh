#!/usr/bin/env bash
# registry-up.sh: make a private image registry answer on 127.0.0.1:5000,
# for the end-to-end tests of images that live in a registry (pulls,
# credentials).
#
# - If 127.0.0.1:5000/v2/ already answers, exit 0 immediately.
# - Otherwise, as root only: install Debian's docker-registry (and
#   apache2-utils for htpasswd) when missing, write a config under
#   $DENV_REGISTRY_DIR (default /tmp/denv-registry) and start the registry
#   detached, with basic authentication: user "denv", password
#   "denv-test-only" (a fixture: the registry listens on loopback only).
#
# The engine trusts 127.0.0.0/8 registries over plain HTTP by default, so
# no daemon configuration is needed.
set -euo pipefail

dir="${DENV_REGISTRY_DIR:-/tmp/denv-registry}"
addr="127.0.0.1:5000"
deadline_s=30

answers() {
	local code
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/v2/" 2>/dev/null) || return 1
	[ "$code" = 200 ] || [ "$code" = 401 ]
}

if answers; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "registry-up: no registry on $addr and not root: start one yourself (or run this script as root)" >&2
	exit 1
fi

if ! command -v docker-registry >/dev/null 2>&1 || ! command -v htpasswd >/dev/null 2>&1; then
	echo "registry-up: installing Debian's docker-registry and apache2-utils" >&2
	apt-get update >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y docker-registry apache2-utils >/dev/null
fi

mkdir -p "$dir/data"
htpasswd -Bbc "$dir/htpasswd" denv denv-test-only 2>/dev/null
cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
auth:
  htpasswd:
    realm: denv-test
    path: $dir/htpasswd
EOF

echo "registry-up: starting docker-registry on $addr (log: $dir/registry.log)" >&2
setsid nohup docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &

end=$((SECONDS + deadline_s))
while [ "$SECONDS" -lt "$end" ]; do
	if answers; then
		echo "registry-up: registry ready" >&2
		exit 0
	fi
	sleep 0.2
done
echo "registry-up: the registry did not answer within ${deadline_s}s; see $dir/registry.log" >&2
exit 1
