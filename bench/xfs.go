package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The xfs part's second daemon (scripts/xfs-daemon.sh): its own directory,
// run directory, addresses and bridge, so that it does not meet one started
// by hand with the script's defaults.
const (
	xfsDir    = "/var/tmp/denv-bench-xfs"
	xfsRun    = "/run/denv-bench-xfs"
	xfsNet    = "10.124"
	xfsBridge = "denvxfs1"
)

// xfs measures snapshots on a copy-on-write filesystem: it starts a second
// Docker daemon whose data-root is an XFS filesystem with reflink on a loop
// file (scripts/xfs-daemon.sh), runs the 1 GiB environment of clone and
// snapshot there, and times `denv snapshot`, `denv restore` (environment
// stopped) and `denv clone --no-start` against `cp -a` (which reflinks on
// XFS) and `cp -a --reflink=never` of the volume's directory into the same
// filesystem, interleaved (the order reverses every run), each after an
// untimed sync and memory touch. It also reports the filesystem's used
// space (statfs, as df) before and after one snapshot and one
// `cp -a --reflink=never`, each after a sync. It needs root, mkfs.xfs and
// the main daemon (for the ex/db image); it runs only when named
// (-only xfs), and everything it made is gone when it ends.
func (b *bench) xfs() {
	rows := [][2]string{
		{"xfs: denv snapshot, 1 GiB volume", "cp -a of the volume dir (reflink)"},
		{"xfs: denv restore, 1 GiB volume (env stopped)", "cp -a of the volume dir (reflink)"},
		{"xfs: denv clone --no-start, 1 GiB volume", "cp -a of the volume dir (reflink)"},
		{"xfs: denv snapshot, 1 GiB volume", "cp -a --reflink=never"},
		{"xfs: disk used by a snapshot of 1 GiB", "cp -a --reflink=never"},
	}
	fail := func(why string) {
		for _, r := range rows {
			b.na(r[0], r[1], why)
		}
	}
	if os.Geteuid() != 0 {
		fail("not root: the part mounts an XFS loop file and starts a second dockerd")
		return
	}
	for _, tool := range []string{"mkfs.xfs", "losetup", "dockerd"} {
		if _, err := exec.LookPath(tool); err != nil {
			fail(tool + " not installed")
			return
		}
	}
	if !b.ready(rows, true, "snapshot", "restore", "clone", "run") {
		return
	}
	b.logf("snapshot, restore and clone of a 1 GiB volume on an XFS data-root vs cp -a (%d runs)", b.lifeRuns)
	script := filepath.Join(b.repo, "scripts", "xfs-daemon.sh")
	scriptEnv := []string{"DENV_XFS_DIR=" + xfsDir, "DENV_XFS_RUN=" + xfsRun, "DENV_XFS_NET=" + xfsNet, "DENV_XFS_BRIDGE=" + xfsBridge}
	// registered first, so it runs last: the environments' cleanups still
	// reach the second daemon, then it goes
	b.cleanups = append(b.cleanups, func() {
		b.dockerEnv = nil
		if _, err := b.run(scriptEnv, b.repo, script, "down"); err != nil {
			b.logf("xfs: %v", err)
		}
	})
	// run, not output: the script's reason is its last line
	if _, err := b.run(scriptEnv, b.repo, script, "up"); err != nil {
		fail("the XFS daemon did not start: " + err.Error())
		return
	}
	host, err := b.output(scriptEnv, script, "host")
	if err != nil {
		fail(err.Error())
		return
	}
	b.dockerEnv = []string{"DOCKER_HOST=" + strings.TrimSpace(host)}
	mnt := filepath.Join(xfsDir, "mnt")
	home := []string{"DENV_HOME=" + filepath.Join(b.tmp, "xfs-home")}
	id := "denvbench-xfs"
	src, err := b.gigabyteEnv(home, id)
	if err != nil {
		fail(err.Error())
		return
	}
	if _, err := b.run(home, b.tmp, b.denv, "stop", id); err != nil {
		fail(err.Error())
		return
	}
	// the snapshot restored, taken untimed (it imports the copier image)
	base := id + "-base"
	b.cleanups = append(b.cleanups, func() { b.run(home, b.tmp, b.denv, "snapshot", "rm", base) })
	if _, err := b.run(home, b.tmp, b.denv, "snapshot", id, "-n", base); err != nil {
		fail(err.Error())
		return
	}

	// disk: the used space of the filesystem around one snapshot and one
	// full copy, each kept until measured
	snapDisk, err := b.usedBy(mnt, func() error {
		_, err := b.run(home, b.tmp, b.denv, "snapshot", id, "-n", id+"-disk")
		return err
	})
	b.run(home, b.tmp, b.denv, "snapshot", "rm", id+"-disk")
	if err != nil {
		fail(err.Error())
		return
	}
	fullDir := filepath.Join(mnt, "cp-full")
	cpDisk, err := b.usedBy(mnt, func() error {
		_, err := b.run(nil, b.tmp, "cp", "-a", "--reflink=never", src, fullDir)
		return err
	})
	os.RemoveAll(fullDir)
	if err != nil {
		fail(err.Error())
		return
	}

	var snapT, restoreT, cloneT, cpT, cpNeverT []time.Duration
	for i := range b.lifeRuns {
		name := fmt.Sprintf("%s-%d", id, i)
		cid := fmt.Sprintf("%s-c%d", id, i)
		b.cleanups = append(b.cleanups, func() { b.run(nil, b.tmp, b.compose, "-p", cid, "down", "-v", "-t", "1") })
		steps := []func() error{
			b.timedSnapshot(home, id, name, &snapT),
			b.timedRestore(home, id, base, &restoreT),
			func() error {
				b.prepare()
				r, err := b.run(home, b.tmp, b.denv, "clone", id, "-n", cid, "--no-start")
				cloneT = append(cloneT, r.wall)
				b.run(home, b.tmp, b.denv, "rm", cid, "--volumes")
				return err
			},
			func() error {
				b.prepare()
				d, err := b.cpInto(src, mnt)
				cpT = append(cpT, d)
				return err
			},
			func() error {
				b.prepare()
				d, err := b.cpInto(src, mnt, "--reflink=never")
				cpNeverT = append(cpNeverT, d)
				return err
			},
		}
		if i%2 == 1 {
			slices.Reverse(steps)
		}
		for _, s := range steps {
			if err := s(); err != nil {
				fail(err.Error())
				return
			}
		}
	}
	b.logf("xfs: snapshot %v; restore %v; clone %v; cp -a %v; cp -a --reflink=never %v",
		roundAll(snapT), roundAll(restoreT), roundAll(cloneT), roundAll(cpT), roundAll(cpNeverT))
	b.logf("xfs: used space grew by %d MiB for a snapshot, %d MiB for cp -a --reflink=never", snapDisk>>20, cpDisk>>20)
	b.compare(rows[0][0], median(snapT), rows[0][1], median(cpT), 0)
	b.compare(rows[1][0], median(restoreT), rows[1][1], median(cpT), 0)
	b.compare(rows[2][0], median(cloneT), rows[2][1], median(cpT), 0)
	b.compare(rows[3][0], median(snapT), rows[3][1], median(cpNeverT), 0)
	b.rows = append(b.rows, row{
		what: rows[4][0], denv: fmtMiB(snapDisk), peerName: rows[4][1], peer: fmtMiB(cpDisk),
		ratio: fmt.Sprintf("%.3fx", float64(snapDisk)/float64(max(cpDisk, 1))),
	})
}

// usedBy returns how much the used space of the filesystem at dir grew
// across do, each side measured after a sync (as df: blocks less free
// blocks; XFS allocates lazily, so unsynced data would not show).
func (b *bench) usedBy(dir string, do func() error) (int64, error) {
	used := func() (int64, error) {
		b.run(nil, b.tmp, "sync")
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return 0, err
		}
		return int64(st.Blocks-st.Bfree) * st.Bsize, nil
	}
	before, err := used()
	if err != nil {
		return 0, err
	}
	if err := do(); err != nil {
		return 0, err
	}
	after, err := used()
	return after - before, err
}

func fmtMiB(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
