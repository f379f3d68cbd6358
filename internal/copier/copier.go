// Package copier copies one directory tree into another faithfully - file
// contents, modes, owners (uid/gid), symlinks, hard links, empty
// directories, device nodes, fifos and modification times - and computes a
// checksum listing of a tree to compare two copies.
//
// It is the code that runs INSIDE the engine when denv copies a volume: the
// denv executable, imported as the copier image (backend/volumecopy), is
// started with a hidden subcommand and the volumes mounted
// (Copier.StartCopy there). It must therefore run as root to restore
// owners. It only uses the standard library and golang.org/x/sys, so that
// it adds no cgo dependency: a static denv build stays static.
//
// Progress is reported as lines on a writer, one event per line:
//
//	total BYTES     the sum of the regular file sizes, before copying
//	copied BYTES    bytes copied so far (at most every 100 ms)
//	done BYTES      the copy is complete
//
// [Command] is the copy as the engine runs it: several trees, each line
// tagged with the number of its tree (see [Event]).
//
// Extended attributes and ACLs are not copied.
package copier

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// chunk is how much is copied between two progress checks. The copy of a
// chunk between two *os.File goes through copy_file_range (in the kernel),
// so a large chunk costs nothing and keeps progress lines regular.
const chunk = 32 << 20

// workers is how many files are copied at once: a single copy_file_range
// stream does not keep a virtual disk busy.
const workers = 4

// progressEvery bounds how often a "copied" line is written.
const progressEvery = 100 * time.Millisecond

// Copy copies the tree rooted at src into dst, which must exist and is
// expected to be empty (dst itself takes src's mode, owner and times).
// Progress lines are written to progress (nil: none).
func Copy(src, dst string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	return copyTree(src, dst, func(kind string, n int64) { fmt.Fprintf(progress, "%s %d\n", kind, n) }, nil)
}

// errAborted is the error of a copy stopped by its abort channel.
var errAborted = errors.New("interrupted")

// copyTree is [Copy] with its progress events passed to emit, which is
// called by one goroutine at a time. A close of abort (nil: never) stops
// the copy with errAborted.
func copyTree(src, dst string, emit func(kind string, n int64), abort <-chan struct{}) error {
	total, err := size(src)
	if err != nil {
		return err
	}
	emit(KindTotal, total)
	c := &copyRun{src: src, dst: dst, links: map[fileID]string{}, emit: emit, last: time.Now(), jobs: make(chan fileJob, workers), abort: abort}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(c.work)
	}
	walkErr := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			err = c.failed()
		}
		if err != nil {
			return err
		}
		return c.visit(p, d, nil)
	})
	close(c.jobs)
	wg.Wait()
	if err := errors.Join(walkErr, c.failed()); err != nil {
		return err
	}
	// Directory modes and times are set last, deepest first: creating the
	// entries inside would change the times, and a read-only mode would
	// forbid creating them.
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := setMeta(d.path, d.info, false); err != nil {
			return err
		}
	}
	emit(KindDone, c.copied.Load())
	return nil
}

// size sums the sizes of the regular files under root, hard links once.
func size(root string) (int64, error) {
	var total int64
	once := Inodes{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if once.First(info) {
				total += info.Size()
			}
		}
		return nil
	})
	return total, err
}

// Inodes tells the first sight of a file from its other hard links, so
// that the size of a tree counts each file's bytes once (here and in
// internal/snaparchive).
type Inodes map[fileID]bool

// First reports whether info is seen for the first time: always for a
// file with one link, once per inode for a file with several.
func (s Inodes) First(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink <= 1 {
		return true
	}
	id := fileID{st.Dev, st.Ino}
	if s[id] {
		return false
	}
	s[id] = true
	return true
}

// fileID identifies an inode, to recreate hard links as links.
type fileID struct{ dev, ino uint64 }

type dirMeta struct {
	path string
	info fs.FileInfo
}

type copyRun struct {
	src, dst string
	links    map[fileID]string
	dirs     []dirMeta
	copied   atomic.Int64
	jobs     chan fileJob
	mu       sync.Mutex // guards emit, last and err
	emit     func(kind string, n int64)
	last     time.Time
	err      error
	abort    <-chan struct{}
}

// fileJob is a regular file to fill, already created empty at to (so that
// hard links to it can be made at once).
type fileJob struct {
	from, to string
	info     fs.FileInfo
}

func (c *copyRun) work() {
	for j := range c.jobs {
		if c.failed() != nil {
			continue // drain
		}
		err := c.copyFile(j.from, j.to)
		if err == nil {
			err = setMeta(j.to, j.info, false)
		}
		if err != nil {
			c.mu.Lock()
			if c.err == nil {
				c.err = err
			}
			c.mu.Unlock()
		}
	}
}

func (c *copyRun) failed() error {
	select {
	case <-c.abort:
		return errAborted
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *copyRun) visit(p string, d fs.DirEntry, err error) error {
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(c.src, p)
	if err != nil {
		return err
	}
	target := filepath.Join(c.dst, rel)
	info, err := d.Info()
	if err != nil {
		return err
	}
	st, _ := info.Sys().(*syscall.Stat_t)
	m := info.Mode()
	switch {
	case m.IsDir():
		if rel != "." {
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
		}
		c.dirs = append(c.dirs, dirMeta{target, info})
		return nil
	case st != nil && st.Nlink > 1:
		id := fileID{st.Dev, st.Ino}
		if first, ok := c.links[id]; ok {
			return os.Link(first, target)
		}
		c.links[id] = target
	}
	switch {
	case m.IsRegular():
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		c.jobs <- fileJob{p, target, info}
		return nil
	case m&fs.ModeSymlink != 0:
		dest, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if err := os.Symlink(dest, target); err != nil {
			return err
		}
	case st != nil && m&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0:
		if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("cannot recreate %s: %w", rel, err)
		}
	default:
		return fmt.Errorf("cannot copy %s: unsupported file type %s", rel, m.Type())
	}
	return setMeta(target, info, m&fs.ModeSymlink != 0)
}

func (c *copyRun) copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	for {
		if err := c.failed(); err != nil {
			_ = out.Close()
			return err
		}
		n, err := io.CopyN(out, in, chunk)
		c.add(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = out.Close()
			return fmt.Errorf("cannot copy %s: %w", from, err)
		}
	}
	return out.Close()
}

func (c *copyRun) add(n int64) {
	total := c.copied.Add(n)
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.last) >= progressEvery {
		c.last = now
		c.emit(KindCopied, total)
	}
}

// setMeta gives path the owner, mode and times of info. The owner is set
// before the mode because chown clears the setuid and setgid bits.
func setMeta(path string, info fs.FileInfo, symlink bool) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if ok {
		if err := os.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if !symlink {
		if err := os.Chmod(path, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
	}
	mtime := unix.NsecToTimespec(info.ModTime().UnixNano())
	atime := mtime
	if ok {
		atime = unix.Timespec(st.Atim)
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW)
}

// Checksum writes one line per entry under root, in lexical order:
//
//	PATH TYPE MODE UID:GID MTIME SIZE SHA256-or-LINK-TARGET
//
// Two trees are faithful copies of each other when their listings are
// equal. MTIME is in nanoseconds; directories list no size.
func Checksum(root string, w io.Writer) error {
	bw := bufio.NewWriter(w)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var uid, gid, perm uint32
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			uid, gid, perm = st.Uid, st.Gid, st.Mode&0o7777
		}
		var what string
		switch m := info.Mode(); {
		case m.IsRegular():
			sum, err := fileSum(p)
			if err != nil {
				return err
			}
			what = strconv.FormatInt(info.Size(), 10) + " " + sum
		case m&fs.ModeSymlink != 0:
			dest, err := os.Readlink(p)
			if err != nil {
				return err
			}
			what = "-> " + strconv.Quote(dest)
		default:
			what = "-"
		}
		_, err = fmt.Fprintf(bw, "%s %s %o %d:%d %d %s\n", strconv.Quote(rel), typeName(info.Mode()),
			perm, uid, gid, info.ModTime().UnixNano(), what)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m.IsRegular():
		return "file"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	default:
		return strings.ToLower(strings.TrimSpace(m.Type().String()))
	}
}

func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
