#!/usr/bin/env bash
# pg-image.sh: build denv-test/postgres:15, Debian's PostgreSQL 15 as a local
# image for the end-to-end tests, with no registry and no base image.
#
# Usage: scripts/pg-image.sh [--force]
#
# debootstrap (minbase, bookworm, with postgresql-15; installed through apt
# when missing) writes a Debian root into a temporary directory, from the
# Debian mirror that this machine's apt sources name for bookworm
# (DENV_PG_MIRROR overrides it); `tar | docker import` turns it into a
# single-layer image. The image runs as user postgres, with
# PGDATA=/var/lib/postgresql/data (empty, owned by postgres, mode 0700:
# a new named volume mounted there takes that owner) and CMD
# /usr/local/bin/denv-pg-entrypoint, which initdb's PGDATA on first start
# (trust authentication, from anywhere: a test image) and then runs
# postgres listening on all addresses, port 5432. The binaries of
# /usr/lib/postgresql/15/bin (postgres, initdb, psql, pg_isready, pgbench)
# come first on PATH.
#
# The image is labelled denv.recipe, a hash of this script less its comment
# lines: when the image exists with the same hash nothing is built (CI pays
# for the build once per machine); --force rebuilds anyway. A cold build
# downloads about 100 MiB of packages and costs about 100 s of CPU
# (debootstrap runs the packages' maintainer scripts one at a time): 4 to 11
# minutes of wall time measured on a 2-core machine under a load of 11 to
# 40 (9 minutes at 26 to 31).
#
# Needs root (debootstrap, chroot) and a Docker daemon.
set -euo pipefail

image="denv-test/postgres:15"
suite="bookworm"
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
self="$root_dir/scripts/pg-image.sh"

force=""
for arg in "$@"; do
	case "$arg" in
	--force) force=1 ;;
	*)
		echo "pg-image: unknown argument '$arg' (usage: scripts/pg-image.sh [--force])" >&2
		exit 2
		;;
	esac
done

"$root_dir/scripts/docker-up.sh"

# The recipe: this script without its comment lines (editing a comment
# rebuilds nothing).
recipe="$(grep -v '^[[:space:]]*#' "$self" | sha256sum | cut -c1-32)"
old_id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
old_recipe="$(docker image inspect -f '{{index .Config.Labels "denv.recipe"}}' "$image" 2>/dev/null || true)"
if [[ -z "$force" && -n "$old_id" && "$old_recipe" == "$recipe" ]]; then
	echo "$image unchanged ${old_id:7:12}"
	exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
	echo "pg-image: building $image needs root (debootstrap, chroot)" >&2
	exit 1
fi
if ! command -v debootstrap >/dev/null; then
	echo "pg-image: installing debootstrap" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# The mirror: the one this machine's apt sources use for the suite's main
# component (apt parses sources.list and sources.list.d, both formats).
mirror="${DENV_PG_MIRROR:-}"
if [[ -z "$mirror" ]]; then
	mirror="$(apt-get indextargets --no-release-info --format '$(REPO_URI)' \
		'Created-By: Packages' "Release: $suite" 'Component: main' | sort -u | head -n1)"
fi
if [[ -z "$mirror" ]]; then
	echo "pg-image: no apt source for $suite main on this machine: set DENV_PG_MIRROR to a Debian mirror" >&2
	exit 1
fi

# The root is written on a tmpfs when one has room (dpkg syncs every file
# it unpacks: free on a tmpfs, slow on a busy disk).
tmp=/var/tmp
if [[ -d /dev/shm && -w /dev/shm ]] && (($(df --output=avail -k /dev/shm | tail -n1) > 2 * 1024 * 1024)); then
	tmp=/dev/shm
fi
work="$(mktemp -d "$tmp/denv-pg-image.XXXXXX")"
# debootstrap mounts /proc and /sys (and may bind /dev) inside the root and
# unmounts them when it succeeds; after a failure unmount them before
# removing anything, and never cross into another filesystem.
cleanup() {
	local m
	for m in $(awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
rootfs="$work/root"

start=$SECONDS
echo "pg-image: debootstrap $suite with postgresql-15 from $mirror" >&2
if ! debootstrap --variant=minbase --include=postgresql-15 "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
	tail -n 30 "$work/debootstrap.log" >&2
	[[ -f "$rootfs/debootstrap/debootstrap.log" ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
	echo "pg-image: debootstrap failed" >&2
	exit 1
fi

# Debian's postinst created a cluster "main" and a snakeoil certificate;
# the entrypoint makes its own cluster in PGDATA.
rm -rf "$rootfs/var/lib/postgresql/15" "$rootfs/etc/postgresql/15" \
	"$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
	"$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
chroot "$rootfs" install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
chroot "$rootfs" install -d -o postgres -g postgres -m 2775 /run/postgresql

cat >"$rootfs/usr/local/bin/denv-pg-entrypoint" <<'EOF'
#!/bin/sh
# denv-pg-entrypoint: initdb PGDATA on first start, then run PostgreSQL on
# all addresses (trust authentication: a test image). Arguments are passed
# to postgres (e.g. -c fsync=off).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
if [ ! -w "$PGDATA" ]; then
	echo "denv-pg-entrypoint: $PGDATA is not writable by $(id -un)" >&2
	exit 1
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	initdb --pgdata="$PGDATA" --username=postgres --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 --no-sync
	echo "host all all all trust" >>"$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
EOF
chmod 0755 "$rootfs/usr/local/bin/denv-pg-entrypoint"
built=$((SECONDS - start))

id="$(tar -C "$rootfs" --numeric-owner -cf - . |
	docker import \
		--change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV PGDATA=/var/lib/postgresql/data' \
		--change 'ENV LANG=C.UTF-8' \
		--change 'USER postgres' \
		--change 'WORKDIR /var/lib/postgresql' \
		--change 'EXPOSE 5432' \
		--change 'CMD ["/usr/local/bin/denv-pg-entrypoint"]' \
		--change "LABEL denv.recipe=$recipe" \
		--message "denv scripts/pg-image.sh: debootstrap $suite postgresql-15" \
		- "$image")"
# The previous image is now untagged: drop it unless a container uses it.
if [[ -n "$old_id" && "$old_id" != "$id" ]]; then
	docker image rm "$old_id" >/dev/null 2>&1 || true
fi
size="$(docker image inspect -f '{{.Size}}' "$image")"
echo "$image built ${id:7:12} $((size / 1048576)) MiB (debootstrap ${built}s, total $((SECONDS - start))s)"
