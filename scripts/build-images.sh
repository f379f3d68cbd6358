#!/usr/bin/env bash
# build-images.sh: build denv's demo images locally, with no registry and no
# base image.
#
# Usage: scripts/build-images.sh [DIR=IMAGE[=/dir1,/dir2...] ...]
#
# Always builds examples/images/{web,db,worker,expert-system} as
# ex/<name>:latest. Each argument DIR=IMAGE also builds the Go main package
# in DIR (relative to the repository root or absolute; it may belong to
# another module) as IMAGE (":latest" is added when IMAGE has no tag), e.g.
#
#	scripts/build-images.sh tools/helper=ex/helper
#	scripts/build-images.sh /src/cache=ex/cache=/cache,/spool
#
# An image is a single layer: the program, statically linked (CGO_ENABLED=0,
# -trimpath, -ldflags '-s -w'), as /app, an empty /tmp (mode 1777), and the
# listed extra empty directories (/data for ex/db). It gets
# ENTRYPOINT ["/app"], EXPOSE 8080 and the label denv.image.hash, a hash of
# the binary and of this layout: an image whose hash did not change is not
# re-imported, so a warm run only pays for `go build` (cached). No VOLUME is
# declared: denv never wants anonymous volumes.
#
# Prints one line per image. Needs Go and a Docker daemon (started through
# scripts/docker-up.sh when possible).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/docker-up.sh"

# Specs: DIR=IMAGE=EXTRA_DIRS (comma-separated, may be empty).
specs=(
	"examples/images/web=ex/web:latest="
	"examples/images/db=ex/db:latest=/data"
	"examples/images/worker=ex/worker:latest="
	"examples/images/expert-system=ex/expert-system:latest="
)
for arg in "$@"; do
	dir="${arg%%=*}"
	rest="${arg#*=}"
	image="${rest%%=*}"
	extra=""
	[[ "$rest" == *=* ]] && extra="${rest#*=}"
	if [[ "$arg" != *=* || -z "$dir" || -z "$image" ]]; then
		echo "build-images: bad argument '$arg', want DIR=IMAGE[=/dir1,/dir2...]" >&2
		exit 2
	fi
	if [[ ! -d "$dir" ]]; then
		echo "build-images: $dir: no such directory" >&2
		exit 1
	fi
	[[ "${image##*/}" == *:* ]] || image="$image:latest"
	specs+=("$dir=$image=$extra")
done

goarch="$(docker version -f '{{.Server.Arch}}')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

n=0
for spec in "${specs[@]}"; do
	dir="${spec%%=*}"
	rest="${spec#*=}"
	image="${rest%%=*}"
	extra="${rest#*=}"
	n=$((n + 1))
	rootfs="$work/$n"
	mkdir -p "$rootfs/tmp"
	chmod 1777 "$rootfs/tmp"
	(cd "$dir" && CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" \
		go build -trimpath -ldflags '-s -w' -o "$rootfs/app" .)

	changes=('ENTRYPOINT ["/app"]' 'EXPOSE 8080')
	# The hash covers the binary and everything else that shapes the image.
	hash="$({
		sha256sum <"$rootfs/app"
		printf 'layout v1\nextra %s\n' "$extra"
		printf 'change %s\n' "${changes[@]}"
	} | sha256sum | cut -c1-32)"

	old_id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
	old_hash="$(docker image inspect -f '{{index .Config.Labels "denv.image.hash"}}' "$image" 2>/dev/null || true)"
	if [[ -n "$old_id" && "$old_hash" == "$hash" ]]; then
		echo "$image unchanged ${old_id:7:12} ($dir)"
		continue
	fi

	IFS=, read -r -a dirs <<<"$extra"
	for d in "${dirs[@]}"; do
		if [[ -n "$d" ]]; then mkdir -p "$rootfs/${d#/}"; fi
	done
	id="$(tar -C "$rootfs" --owner=0 --group=0 --numeric-owner -cf - . |
		docker import \
			--change "${changes[0]}" --change "${changes[1]}" \
			--change "LABEL denv.image.hash=$hash denv.image.source=$dir" \
			--message "denv build-images.sh: $dir" \
			- "$image")"
	# The previous image is now untagged: drop it unless a container uses it.
	if [[ -n "$old_id" && "$old_id" != "$id" ]]; then
		docker image rm "$old_id" >/dev/null 2>&1 || true
	fi
	size="$(docker image inspect -f '{{.Size}}' "$image")"
	echo "$image built ${id:7:12} $((size / 1024)) KiB ($dir)"
done
