package snaparchive

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/alebellu/denv/internal/copier"
)

// WriteOptions tunes [Write].
type WriteOptions struct {
	// Progress, when set, reports the bytes written per volume.
	Progress Progress
}

// Write writes the snapshot file of m to w, volume i of m.Volumes read
// from the directory dirs[i]. Only the names of m.Volumes are used: Write
// measures each tree and returns m with the volumes' Bytes, Files and
// SHA256 filled and Format set. A tree that changes while it is written
// is an error. w is not closed.
func Write(w io.Writer, m Manifest, dirs []string, opts WriteOptions) (Manifest, error) {
	m.Format = Version
	if len(dirs) != len(m.Volumes) {
		return m, fmt.Errorf("cannot write snapshot %s: %d volumes but %d directories", m.Name, len(m.Volumes), len(dirs))
	}
	for i, d := range dirs {
		bytes, files, err := measure(d)
		if err != nil {
			return m, fmt.Errorf("cannot read volume %s: %w", m.Volumes[i].Name, err)
		}
		m.Volumes[i].Bytes, m.Volumes[i].Files, m.Volumes[i].SHA256 = bytes, files, ""
	}
	if err := m.check(); err != nil {
		return m, err
	}
	// SpeedFastest is zstd -1's level, and 512 KiB its window (zstd -1's
	// for large inputs). Sections of the stream are compressed by two
	// goroutines at once (WithConcurrentBlocks) while the tree is read and
	// hashed on this one. A 1 GiB mixed tree (bench's writeMixedTree),
	// `denv __snapshot-export` into a file on a quiet 2-core machine,
	// 2026-12-06: 2.60-2.66 s and 104-116 MiB of RSS; with the default 4
	// MiB window 3.7-4.0 s and 516 MiB (its first-touched memory page-
	// faults into the hypervisor); with one block compressed in the
	// background (no concurrent blocks), BenchmarkExport1GiB 4.56 s
	// against 2.76 s; `tar -c | zstd -1` 2.69-3.24 s. The files are the
	// same size (667 MiB, tar | zstd -1's 662 MiB).
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(2),
		zstd.WithConcurrentBlocks(true), zstd.WithWindowSize(512<<10))
	if err != nil {
		return m, err
	}
	defer zw.Close()
	bw := bufio.NewWriterSize(zw, 1<<20)
	tw := tar.NewWriter(bw)
	head, err := json.Marshal(m)
	if err != nil {
		return m, err
	}
	if err := writeRecord(tw, manifestName, head); err != nil {
		return m, err
	}
	buf := make([]byte, 1<<20)
	for i, d := range dirs {
		v := &m.Volumes[i]
		var report func(int64)
		if opts.Progress != nil {
			last := time.Now()
			report = func(done int64) {
				if now := time.Now(); now.Sub(last) >= progressEvery {
					last = now
					opts.Progress(i, done, v.Bytes)
				}
			}
		}
		sum, bytes, files, err := writeTree(d, volumesDir+v.Name+"/", tw, buf, report)
		if err != nil {
			return m, fmt.Errorf("cannot write volume %s: %w", v.Name, err)
		}
		if bytes != v.Bytes || files != v.Files {
			return m, fmt.Errorf("cannot write volume %s: it changed while it was written", v.Name)
		}
		if opts.Progress != nil {
			opts.Progress(i, bytes, v.Bytes)
		}
		v.SHA256 = sum
		rec, _ := json.Marshal(sumRecord{SHA256: sum})
		if err := writeRecord(tw, volumesDir+v.Name+sumSuffix, rec); err != nil {
			return m, err
		}
	}
	if err := tw.Close(); err != nil {
		return m, err
	}
	if err := bw.Flush(); err != nil {
		return m, err
	}
	return m, zw.Close()
}

// sumRecord is the entry after each volume's data.
type sumRecord struct {
	SHA256 string `json:"sha256"`
}

func writeRecord(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// TreeSum returns the measures of the tree at dir as [Write] records
// them: its bytes, its entries and the SHA-256 of its canonical tar.
func TreeSum(dir string) (Volume, error) {
	sum, bytes, files, err := writeTree(dir, "", nil, make([]byte, 1<<20), nil)
	return Volume{Bytes: bytes, Files: files, SHA256: sum}, err
}

// measure returns the bytes and entries of the tree at dir, as writeTree
// counts them, without reading the files.
func measure(dir string) (bytes, files int64, err error) {
	once := copier.Inodes{}
	err = walk(dir, func(rel string, info fs.FileInfo) error {
		if rel == "." {
			return nil
		}
		files++
		if info.Mode().IsRegular() && once.First(info) {
			bytes += info.Size()
		}
		return nil
	})
	return bytes, files, err
}

// fileID identifies an inode, to write hard links as links.
type fileID struct{ dev, ino uint64 }

// walk calls fn for every entry of the tree at dir, root first, then
// depth first in name order, with its slash-separated path relative to
// dir. Sockets are skipped.
func walk(dir string, fn func(rel string, info fs.FileInfo) error) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if _, ok := info.Sys().(*syscall.Stat_t); !ok {
			return fmt.Errorf("cannot read the owner of %s", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." && !info.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		if info.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		return fn(filepath.ToSlash(rel), info)
	})
}

// canonicalName is the name of rel in a volume's canonical tar.
func canonicalName(rel string, dir bool) string {
	switch {
	case rel == ".":
		return "./"
	case dir:
		return rel + "/"
	}
	return rel
}

// header returns the canonical tar header of an entry, without its name
// (and link name for hard links).
func header(info fs.FileInfo, target string) (*tar.Header, error) {
	st := info.Sys().(*syscall.Stat_t)
	h := &tar.Header{
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: info.ModTime(),
		Format:  tar.FormatPAX,
	}
	switch m := info.Mode(); {
	case m.IsDir():
		h.Typeflag = tar.TypeDir
	case m.IsRegular():
		h.Typeflag, h.Size = tar.TypeReg, info.Size()
	case m&fs.ModeSymlink != 0:
		h.Typeflag, h.Linkname = tar.TypeSymlink, target
	case m&fs.ModeNamedPipe != 0:
		h.Typeflag = tar.TypeFifo
	case m&fs.ModeCharDevice != 0:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, int64(major(st.Rdev)), int64(minor(st.Rdev))
	case m&fs.ModeDevice != 0:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeBlock, int64(major(st.Rdev)), int64(minor(st.Rdev))
	default:
		return nil, fmt.Errorf("unsupported file type %s", m.Type())
	}
	return h, nil
}

func major(dev uint64) uint32 { return uint32((dev>>32)&0xfffff000) | uint32((dev>>8)&0xfff) }
func minor(dev uint64) uint32 { return uint32((dev>>12)&0xffffff00) | uint32(dev&0xff) }

// writeTree writes the tree at dir into out (when not nil) with every
// name prefixed, and returns the SHA-256 of its canonical tar, its bytes
// and its entries. report, when set, is called with the bytes so far.
func writeTree(dir, prefix string, out *tar.Writer, buf []byte, report func(int64)) (sum string, bytes, files int64, err error) {
	h := sha256.New()
	canon := tar.NewWriter(h)
	links := map[fileID]string{}
	err = walk(dir, func(rel string, info fs.FileInfo) error {
		st := info.Sys().(*syscall.Stat_t)
		p := filepath.Join(dir, filepath.FromSlash(rel))
		var target string
		if info.Mode()&fs.ModeSymlink != 0 {
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			target = t
		}
		hdr, err := header(info, target)
		if err != nil {
			return fmt.Errorf("cannot write %s: %w", rel, err)
		}
		name := canonicalName(rel, info.IsDir())
		if rel != "." {
			files++
		}
		if !info.IsDir() && st.Nlink > 1 {
			id := fileID{st.Dev, st.Ino}
			if first, ok := links[id]; ok {
				hdr.Typeflag, hdr.Size, hdr.Linkname, hdr.Devmajor, hdr.Devminor = tar.TypeLink, 0, first, 0, 0
			} else {
				links[id] = name
			}
		}
		if err := writeHeader(canon, out, hdr, name, prefix); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		n, err := copyFile(p, hdr.Size, canon, out, buf, func(n int64) {
			if report != nil {
				report(bytes + n)
			}
		})
		bytes += n
		return err
	})
	if err == nil {
		err = canon.Close()
	}
	if err != nil {
		return "", bytes, files, err
	}
	return hex.EncodeToString(h.Sum(nil)), bytes, files, nil
}

// writeHeader writes hdr named name to the canonical tar and, prefixed,
// to out (when not nil).
func writeHeader(canon, out *tar.Writer, hdr *tar.Header, name, prefix string) error {
	hdr.Name = name
	if err := canon.WriteHeader(hdr); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	o := *hdr
	o.Name = prefix + name
	if o.Typeflag == tar.TypeLink {
		o.Linkname = prefix + o.Linkname
	}
	if name == "./" {
		o.Name = prefix
	}
	return out.WriteHeader(&o)
}

// copyFile copies the size bytes of the file at p to canon and out, and
// fails if the file no longer has that size.
func copyFile(p string, size int64, canon, out *tar.Writer, buf []byte, report func(int64)) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	var done int64
	for done < size {
		chunk := buf[:min(int64(len(buf)), size-done)]
		n, err := io.ReadFull(f, chunk)
		if n > 0 {
			if _, werr := canon.Write(chunk[:n]); werr != nil {
				return done, werr
			}
			if out != nil {
				if _, werr := out.Write(chunk[:n]); werr != nil {
					return done, werr
				}
			}
			done += int64(n)
			report(done)
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return done, fmt.Errorf("%s shrank while it was read", p)
			}
			return done, err
		}
	}
	if n, _ := f.Read(buf[:1]); n > 0 {
		return done, fmt.Errorf("%s grew while it was read", p)
	}
	return done, nil
}
