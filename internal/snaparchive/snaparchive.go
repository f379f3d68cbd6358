// Package snaparchive is the snapshot export file format: one file that
// holds a snapshot's volumes and what they came from, written from
// directories on disk and read back into directories, verified.
//
// The file is a zstd stream (github.com/klauspost/compress/zstd) of one
// PAX tar archive:
//
//	manifest.json       the [Manifest] without checksums, always first
//	volumes/NAME/       the root of the first volume (its mode, owner, time)
//	volumes/NAME/...    its entries, depth first, each directory in name order
//	volumes/NAME.json   {"sha256": "..."}: the volume's checksum, after its data
//	...                 the same for every volume, in the manifest's order
//	(end of archive)    nothing may follow
//
// so `zstd -dc FILE | tar -x` opens it without denv. A volume's checksum
// cannot come before its data when the file is written in one pass to a
// stream, hence the record after each volume.
//
// A volume's checksum is the SHA-256 of its canonical tar: the archive
// that [TreeSum] writes for the tree alone (names relative to its root,
// which is "./"; PAX format; type, mode bits, numeric owner, modification
// time in nanoseconds, size, link target and device numbers; no user or
// group names, access times or extended attributes). It depends only on
// the tree, not on the file that carries it, so a volume on disk can be
// compared with an export.
//
// What is kept is what internal/copier keeps: contents, modes (with
// setuid, setgid and sticky bits), owners, symlinks, hard links, empty
// directories, device nodes, fifos and modification times. Sockets are
// left out (as tar does: they mean nothing without their process);
// extended attributes and ACLs are not kept.
package snaparchive

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Version is the format version this package writes and the only one it
// reads.
const Version = 1

// The hidden subcommands of the copier executable (cmd/denv/snapcopier.go)
// that run [ExportCommand], [ImportCommand] and [SumCommand] inside the
// engine with the volumes mounted.
const (
	ExportArg = "__snapshot-export"
	ImportArg = "__snapshot-import"
	SumArg    = "__snapshot-sum"
)

// Entry names in the archive.
const (
	manifestName = "manifest.json"
	volumesDir   = "volumes/"
	sumSuffix    = ".json"
	// maxRecord bounds the manifest and checksum records read into
	// memory: a hostile file cannot make the reader allocate more.
	maxRecord = 64 << 20
)

// Manifest describes a snapshot: the first entry of the file.
type Manifest struct {
	// Format is the format version of the file ([Version]).
	Format int `json:"format"`
	// Name is the snapshot's name.
	Name string `json:"name"`
	// Environment is the environment the snapshot was taken of.
	Environment string `json:"environment"`
	// Definition is the definition that environment was run from.
	Definition Definition `json:"definition"`
	// Project is the compose project YAML recorded for the environment.
	Project string `json:"project"`
	// Created is when the snapshot was taken.
	Created time.Time `json:"created"`
	// Volumes are the snapshot's volumes, in the order of their data.
	Volumes []Volume `json:"volumes"`
}

// Definition names the definition an environment was run from.
type Definition struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// Volume is one volume of a snapshot.
type Volume struct {
	// Name is the volume's name in the environment (a compose volume
	// key), also its directory in the archive.
	Name string `json:"name"`
	// Bytes is the sum of the sizes of its regular files, hard links
	// counted once.
	Bytes int64 `json:"bytes"`
	// Files is the number of entries under its root (files, directories,
	// links, devices; not the root itself).
	Files int64 `json:"files"`
	// SHA256 is the hex SHA-256 of its canonical tar (see the package
	// documentation). It is recorded after the volume's data, so it is
	// empty in the manifest at the start of a file and filled in the
	// manifests that [Write] and [Reader.Extract] return.
	SHA256 string `json:"sha256,omitempty"`
}

// volumeName is what a volume name may be: Docker's rule for volume
// names, which also keeps it a single path element.
var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// check reports the first problem of a manifest read from or about to be
// written to a file.
func (m *Manifest) check() error {
	if m.Format != Version {
		return fmt.Errorf("snapshot file format %d is not supported: this denv reads format %d", m.Format, Version)
	}
	if m.Name == "" {
		return errors.New("snapshot manifest has no snapshot name")
	}
	seen := map[string]bool{}
	for _, v := range m.Volumes {
		if !volumeName.MatchString(v.Name) {
			return fmt.Errorf("snapshot manifest has an invalid volume name %q", v.Name)
		}
		if seen[v.Name] {
			return fmt.Errorf("snapshot manifest lists volume %s twice", v.Name)
		}
		seen[v.Name] = true
		if v.Bytes < 0 || v.Files < 0 {
			return fmt.Errorf("snapshot manifest has a negative size for volume %s", v.Name)
		}
	}
	return nil
}

// Progress is called with the index of a volume, the bytes of its
// regular files written or read so far and its total ([Volume.Bytes]), at
// most every 100 ms and once at the end of each volume.
type Progress func(volume int, done, total int64)

// progressEvery bounds how often a [Progress] is called.
const progressEvery = 100 * time.Millisecond
