#!/usr/bin/env bash
# bench.sh: measure denv beside Docker Compose doing the same work and print
# one table (what `make bench` runs). It makes sure a Docker daemon answers
# and the demo images exist, then runs the Go program in bench/, which
# builds both CLIs from this tree and its module cache.
#
# Usage: scripts/bench.sh [-runs N] [-lifecycle-runs N] [-only PART,...]
# Without a daemon (and not root to start one) the Docker rows print "n/a".
set -euo pipefail
cd "$(dirname "$0")/.."

if scripts/docker-up.sh; then
	scripts/build-images.sh >/dev/null
else
	echo "bench: no Docker daemon: the run/stop/rm and envs rows will be n/a" >&2
fi
# the export part compares with `tar -c | zstd -1`: Debian's zstd
if ! command -v zstd >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	apt-get install -y -qq zstd >/dev/null || echo "bench: cannot install zstd: the export row will be n/a" >&2
fi
exec go run ./bench "$@"
