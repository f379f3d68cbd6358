#!/usr/bin/env bash
# xfs-daemon.sh: a second, throw-away Docker daemon whose data-root (and so
# its volumes) lives on an XFS filesystem with reflink, for measuring what a
# snapshot costs on a copy-on-write filesystem (bench part `xfs`,
# docs/SNAPSHOTS.md "Cost").
#
# Usage (as root):
#   scripts/xfs-daemon.sh up      make the filesystem, start the daemon, load
#                                 the ex/db image from the main daemon; prints
#                                 the DOCKER_HOST to use
#   scripts/xfs-daemon.sh down    stop that daemon (its pid only), unmount,
#                                 detach the loop device, delete its bridge,
#                                 remove the file
#   scripts/xfs-daemon.sh host    print the DOCKER_HOST (unix socket URL)
#
# Everything of the second daemon is its own, so that it cannot disturb the
# machine's main daemon (/var/run/docker.sock): socket, exec-root (and so its
# own managed containerd), pidfile, data-root, containerd namespaces, cgroup
# parent, log file, and a default bridge of its own (DENV_XFS_BRIDGE,
# created here, deleted by down). Never --bridge=none: with it, dockerd
# deletes the host's docker0 interface at start, the main daemon's default
# bridge ("could not find bridge docker0" for every container on it; it
# happened once). No iptables rules or masquerading (--iptables=false
# --ip-masq=false). denv's environments need a network of their own (the
# language has no host networking), so the daemon creates user-defined
# bridges, only from its own /16 (DENV_XFS_NET, default 10.123: networks in
# /24s from 10.123.0.0/17, the default bridge 10.123.255.1/24), which must
# not overlap a route of the host: the script refuses to start if it does.
# Published ports are served by docker-proxy alone (no iptables DNAT), on
# the host's ports, like the main daemon's.
#
# Environment: DENV_XFS_DIR (default /var/tmp/denv-xfs), DENV_XFS_SIZE
# (default 8G), DENV_XFS_RUN (default /run/denv-xfs), DENV_XFS_NET (two
# octets, default 10.123), DENV_XFS_BRIDGE (default denvxfs0),
# DENV_XFS_IMAGES (images copied from the main daemon; default ex/db).
set -euo pipefail

dir="${DENV_XFS_DIR:-/var/tmp/denv-xfs}"
size="${DENV_XFS_SIZE:-8G}"
run="${DENV_XFS_RUN:-/run/denv-xfs}"
net="${DENV_XFS_NET:-10.123}"
bridge="${DENV_XFS_BRIDGE:-denvxfs0}"
pool="$net.0.0/17"
bip="$net.255.1/24"
images="${DENV_XFS_IMAGES:-ex/db}"
img="$dir/xfs.img"
mnt="$dir/mnt"
sock="$run/docker.sock"
host="unix://$sock"
pidfile="$run/dockerd.pid"
cgroup="$(basename "$run")"
log="$dir/dockerd.log"
deadline_s=60

die() {
	echo "xfs-daemon: $*" >&2
	exit 1
}

# the main daemon, explicitly: DOCKER_HOST may point at the XFS one
main_docker() {
	DOCKER_HOST=unix:///var/run/docker.sock docker "$@"
}

xfs_docker() {
	DOCKER_HOST="$host" docker "$@"
}

daemon_pid() {
	[ -s "$pidfile" ] || return 1
	local pid
	pid="$(cat "$pidfile")"
	# the pid must still be a dockerd started with our pidfile
	if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--pidfile $pidfile"; then
		echo "$pid"
		return 0
	fi
	return 1
}

loop_dev() {
	losetup -j "$img" -O NAME --noheadings 2>/dev/null | head -n1
}

up() {
	[ "$(id -u)" = 0 ] || die "must run as root (it mounts a filesystem and starts dockerd)"
	command -v mkfs.xfs >/dev/null || die "mkfs.xfs missing (Debian: apt-get install xfsprogs)"
	command -v dockerd >/dev/null || die "dockerd missing"
	if daemon_pid >/dev/null && xfs_docker info >/dev/null 2>&1; then
		echo "$host"
		return 0
	fi
	[[ "$net" =~ ^[0-9]+\.[0-9]+$ ]] || die "DENV_XFS_NET must be two octets (e.g. 10.123), not $net"
	# its /16 must be free on this host (but for its own bridge, left by an
	# earlier up): a route into it would be shadowed by, or shadow, the
	# second daemon's bridges
	if ip -4 route | awk -v n="$net." -v b="$bridge" 'index($1, n) == 1 && $3 != b {f = 1} END {exit !f}'; then
		die "$net.0.0/16 overlaps a route of this host (ip -4 route): set DENV_XFS_NET"
	fi
	mkdir -p "$dir" "$mnt" "$run"
	if ! mountpoint -q "$mnt"; then
		if [ ! -e "$img" ]; then
			truncate -s "$size" "$img"
			mkfs.xfs -q -m reflink=1 "$img"
		fi
		local dev
		dev="$(loop_dev)"
		[ -n "$dev" ] || dev="$(losetup -f --show "$img")"
		mount -t xfs "$dev" "$mnt"
	fi
	# a default bridge of its own (never --bridge=none: see above)
	if ! ip link show "$bridge" >/dev/null 2>&1; then
		ip link add "$bridge" type bridge
		ip addr add "$bip" dev "$bridge"
		ip link set "$bridge" up
	fi
	echo "xfs-daemon: starting dockerd on $host (data-root $mnt/docker, log $log)" >&2
	setsid nohup dockerd \
		--host "$host" \
		--data-root "$mnt/docker" \
		--exec-root "$run/exec" \
		--pidfile "$pidfile" \
		--containerd-namespace denv-xfs \
		--containerd-plugins-namespace denv-xfs-plugins \
		--cgroup-parent "$cgroup" \
		--bridge="$bridge" --iptables=false --ip6tables=false --ip-masq=false \
		--default-address-pool "base=$pool,size=24" \
		--storage-driver overlay2 \
		>>"$log" 2>&1 </dev/null &
	local end=$((SECONDS + deadline_s))
	until xfs_docker info >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$end" ]; then
			die "dockerd did not answer on $host within ${deadline_s}s; see $log (then: $0 down)"
		fi
		sleep 0.2
	done
	for i in $images; do
		if ! xfs_docker image inspect "$i" >/dev/null 2>&1; then
			main_docker image inspect "$i" >/dev/null 2>&1 || die "image $i missing on the main daemon (scripts/build-images.sh)"
			main_docker save "$i" | xfs_docker load -q >/dev/null
		fi
	done
	echo "$host"
}

down() {
	[ "$(id -u)" = 0 ] || die "must run as root"
	local pid
	if pid="$(daemon_pid)"; then
		# its containers first, so that nothing holds the filesystem
		xfs_docker ps -aq 2>/dev/null | xargs -r env DOCKER_HOST="$host" docker rm -f >/dev/null 2>&1 || true
		kill "$pid"
		local end=$((SECONDS + deadline_s))
		while kill -0 "$pid" 2>/dev/null; do
			if [ "$SECONDS" -ge "$end" ]; then
				echo "xfs-daemon: dockerd $pid did not stop within ${deadline_s}s: killing it" >&2
				kill -9 "$pid" 2>/dev/null || true
			fi
			sleep 0.2
		done
	fi
	# what the daemon may have left mounted below its directories (overlay,
	# shm, network namespaces), deepest first
	local d
	for d in "$mnt" "$run"; do
		awk -v m="$d/" 'index($2, m) == 1 {print $2}' /proc/self/mounts | sort -r | xargs -r -n1 umount -l
	done
	if mountpoint -q "$mnt"; then
		umount "$mnt"
	fi
	local dev
	dev="$(loop_dev)"
	[ -z "$dev" ] || losetup -d "$dev"
	# its bridge only when it is a bridge holding our address
	if ip -4 addr show dev "$bridge" 2>/dev/null | grep -q "inet $bip "; then
		ip link del "$bridge"
	fi
	# its containers' (now empty) parent cgroups: v1 hierarchies, v2
	rmdir /sys/fs/cgroup/*/"$cgroup" /sys/fs/cgroup/"$cgroup" 2>/dev/null || true
	rm -rf "$dir" "$run"
}

case "${1:-}" in
up) up ;;
down) down ;;
host) echo "$host" ;;
*) die "usage: $0 up|down|host" ;;
esac
