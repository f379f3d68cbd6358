package snaparchive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// Reader reads a snapshot file: [NewReader] reads and checks its
// manifest, [Reader.Extract] the rest.
type Reader struct {
	zr   *zstd.Decoder
	pos  *countReader // the decompressed archive, counted
	tr   *tar.Reader
	m    Manifest
	done bool
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// NewReader reads the manifest at the start of the snapshot file r and
// checks it (format version, volume names). Call [Reader.Close].
func NewReader(r io.Reader) (*Reader, error) {
	return newReader(r, 0)
}

func newReader(r io.Reader, concurrency int) (*Reader, error) {
	opts := []zstd.DOption{zstd.WithDecoderMaxWindow(64 << 20)}
	if concurrency > 0 {
		opts = append(opts, zstd.WithDecoderConcurrency(concurrency))
	}
	zr, err := zstd.NewReader(r, opts...)
	if err != nil {
		return nil, fmt.Errorf("not a denv snapshot file: %s", oneLine(err))
	}
	rd := &Reader{zr: zr, pos: &countReader{r: zr}}
	rd.tr = tar.NewReader(rd.pos)
	if err := rd.readManifest(); err != nil {
		zr.Close()
		return nil, err
	}
	return rd, nil
}

func (r *Reader) readManifest() error {
	h, err := r.tr.Next()
	if err != nil {
		if r.pos.n == 0 && errors.Is(err, io.EOF) {
			return errors.New("not a denv snapshot file: it is empty")
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("snapshot file truncated in its manifest")
		}
		return fmt.Errorf("not a denv snapshot file: %s", oneLine(err))
	}
	if h.Name != manifestName || h.Typeflag != tar.TypeReg {
		return fmt.Errorf("not a denv snapshot file: it starts with %q, not %s", h.Name, manifestName)
	}
	data, err := readRecord(r.tr, h)
	if err != nil {
		return r.fail("its manifest", err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		// the version first: a newer format may have new fields
		var v struct{ Format int }
		if json.Unmarshal(data, &v) == nil && v.Format != Version {
			return fmt.Errorf("snapshot file format %d is not supported: this denv reads format %d", v.Format, Version)
		}
		return fmt.Errorf("snapshot file has an invalid manifest: %s", oneLine(err))
	}
	if err := m.check(); err != nil {
		return err
	}
	for _, v := range m.Volumes {
		if v.SHA256 != "" {
			return fmt.Errorf("snapshot file has an invalid manifest: volume %s has its checksum before its data", v.Name)
		}
	}
	r.m = m
	return nil
}

// readRecord reads the content of a small entry.
func readRecord(tr *tar.Reader, h *tar.Header) ([]byte, error) {
	if h.Size > maxRecord {
		return nil, fmt.Errorf("%s is too large (%d bytes)", h.Name, h.Size)
	}
	data := make([]byte, h.Size)
	_, err := io.ReadFull(tr, data)
	return data, err
}

// fail is the one-line error for err met while reading where.
func (r *Reader) fail(where string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("snapshot file truncated in %s", where)
	}
	return fmt.Errorf("snapshot file corrupted in %s: %s", where, oneLine(err))
}

// Manifest returns the manifest read by [NewReader] (without checksums).
func (r *Reader) Manifest() Manifest {
	m := r.m
	m.Volumes = append([]Volume(nil), r.m.Volumes...)
	return m
}

// Close releases the decoder.
func (r *Reader) Close() { r.zr.Close() }

// ExtractOptions tunes [Reader.Extract].
type ExtractOptions struct {
	// Progress, when set, reports the bytes read per volume.
	Progress Progress
}

// Extract reads the rest of the file, verifying every volume (its
// checksum, bytes and entries against the manifest), that the archive is
// complete and that nothing follows it, and returns the manifest with the
// volumes' checksums. With dirs (one per volume, in the manifest's
// order) it also writes volume i into dirs[i], which must be an empty
// directory or not exist (its parent must). Each volume is written into a
// temporary directory (inside dirs[i], or beside it when it does not
// exist) that is moved into place only once the whole file is verified:
// on any error, including a cancelled ctx, every dirs[i] is left as it
// was. Without dirs (nil) it only verifies. Extract can be called once.
func (r *Reader) Extract(ctx context.Context, dirs []string, opts ExtractOptions) (Manifest, error) {
	m := r.Manifest()
	if r.done {
		return m, errors.New("snapshot file already read")
	}
	r.done = true
	if dirs != nil && len(dirs) != len(m.Volumes) {
		return m, fmt.Errorf("snapshot %s has %d volumes, not %d", m.Name, len(m.Volumes), len(dirs))
	}
	var targets []*target
	if dirs != nil {
		var err error
		if targets, err = prepareTargets(dirs); err != nil {
			return m, err
		}
	}
	ok := false
	defer func() {
		if !ok {
			for _, t := range targets {
				t.rollback()
			}
		}
	}()
	buf := make([]byte, 1<<20)
	// end is where the last entry's content, padded to a block, ends
	var end int64
	for i := range m.Volumes {
		var t *target
		if targets != nil {
			t = targets[i]
		}
		sum, e, err := r.readVolume(ctx, i, &m.Volumes[i], t, buf, opts.Progress)
		if err != nil {
			return m, err
		}
		m.Volumes[i].SHA256, end = sum, e
	}
	where := "after its last volume"
	h, err := r.tr.Next()
	if err == nil {
		return m, fmt.Errorf("snapshot file corrupted %s: unexpected entry %q", where, h.Name)
	}
	if !errors.Is(err, io.EOF) {
		return m, r.fail(where, err)
	}
	// tar stops quietly at a block boundary: the end-of-archive marker
	// (two zero blocks) tells a complete file from a truncated one
	if r.pos.n != end+2*512 {
		return m, fmt.Errorf("snapshot file truncated %s", where)
	}
	if n, err := r.pos.Read(buf[:1]); n > 0 {
		return m, errors.New("snapshot file has data after its end")
	} else if err != nil && !errors.Is(err, io.EOF) {
		return m, r.fail("its end", err)
	}
	for _, t := range targets {
		if err := t.commit(); err != nil {
			return m, err
		}
	}
	ok = true
	return m, nil
}

// readVolume reads volume i (into t when not nil) up to and including its
// checksum record, and returns its checksum and where that record ends.
func (r *Reader) readVolume(ctx context.Context, i int, v *Volume, t *target, buf []byte, progress Progress) (string, int64, error) {
	where := "volume " + v.Name
	prefix := volumesDir + v.Name + "/"
	hash := sha256.New()
	canon := tar.NewWriter(hash)
	x := &extractor{t: t, dirs: map[string]bool{}, nondirs: map[string]bool{}}
	var bytesRead, files int64
	last := time.Now()
	first := true
	for {
		if ctx.Err() != nil {
			return "", 0, fmt.Errorf("import of volume %s stopped: %w", v.Name, context.Cause(ctx))
		}
		h, err := r.tr.Next()
		if err != nil {
			return "", 0, r.fail(where, err)
		}
		if h.Name == volumesDir+v.Name+sumSuffix && !first {
			data, err := readRecord(r.tr, h)
			if err != nil {
				return "", 0, r.fail(where, err)
			}
			end := r.pos.n + (512-h.Size%512)%512
			var rec sumRecord
			if err := json.Unmarshal(data, &rec); err != nil {
				return "", 0, r.fail(where, fmt.Errorf("invalid checksum record: %s", oneLine(err)))
			}
			if err := canon.Close(); err != nil {
				return "", 0, err
			}
			got := hex.EncodeToString(hash.Sum(nil))
			if rec.SHA256 != got {
				return "", 0, fmt.Errorf("checksum mismatch in volume %s", v.Name)
			}
			if bytesRead != v.Bytes || files != v.Files {
				return "", 0, fmt.Errorf("snapshot file corrupted in volume %s: it holds %d bytes in %d entries, its manifest says %d in %d",
					v.Name, bytesRead, files, v.Bytes, v.Files)
			}
			if progress != nil {
				progress(i, bytesRead, v.Bytes)
			}
			return got, end, nil
		}
		rel, ok := strings.CutPrefix(h.Name, prefix)
		if !ok && h.Name+"/" == prefix {
			rel, ok = "", true
		}
		if !ok {
			return "", 0, fmt.Errorf("snapshot file corrupted in %s: unexpected entry %q", where, h.Name)
		}
		ch, err := canonicalHeader(h, rel, prefix, first)
		if err != nil {
			return "", 0, fmt.Errorf("snapshot file corrupted in %s: %w", where, err)
		}
		if err := canon.WriteHeader(ch); err != nil {
			return "", 0, fmt.Errorf("snapshot file corrupted in %s: %s", where, oneLine(err))
		}
		if !first {
			files++
		}
		first = false
		var content io.Writer = canon
		if ch.Typeflag == tar.TypeReg {
			bytesRead += ch.Size
			if bytesRead > v.Bytes {
				return "", 0, fmt.Errorf("snapshot file corrupted in %s: more data than its manifest says", where)
			}
		}
		if err := x.entry(ch, content, r.tr, buf); err != nil {
			if errors.Is(err, errBadEntry) {
				return "", 0, fmt.Errorf("snapshot file corrupted in %s: %w", where, err)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || isDecodeErr(err) {
				return "", 0, r.fail(where, err)
			}
			return "", 0, fmt.Errorf("cannot import volume %s: %w", v.Name, err)
		}
		if progress != nil && ch.Typeflag == tar.TypeReg {
			if now := time.Now(); now.Sub(last) >= progressEvery {
				last = now
				progress(i, bytesRead, v.Bytes)
			}
		}
	}
}

// isDecodeErr tells errors of the decompression or of tar from errors of
// the filesystem being written.
func isDecodeErr(err error) bool {
	var pe *os.PathError
	var le *os.LinkError
	return !errors.As(err, &pe) && !errors.As(err, &le)
}

var errBadEntry = errors.New("invalid entry")

// canonicalHeader checks an entry of a volume read from a file and
// returns its header in the volume's canonical tar (its name relative to
// the volume). Only the fields of the canonical tar are kept, so nothing
// else of the file is applied either.
func canonicalHeader(h *tar.Header, rel, prefix string, root bool) (*tar.Header, error) {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", errBadEntry, h.Name, why) }
	isDir := h.Typeflag == tar.TypeDir
	if root != (rel == "") {
		return nil, bad("the volume's root must come first, once")
	}
	name := "./"
	if !root {
		clean := strings.TrimSuffix(rel, "/")
		if isDir != strings.HasSuffix(rel, "/") || clean == "" || clean == "." || clean == ".." ||
			path.Clean(clean) != clean || strings.HasPrefix(clean, "../") || path.IsAbs(clean) || strings.ContainsRune(clean, 0) {
			return nil, bad("not a clean path inside the volume")
		}
		name = rel
	} else if !isDir {
		return nil, bad("the volume's root is not a directory")
	}
	c := &tar.Header{Typeflag: h.Typeflag, Name: name, Mode: h.Mode & 0o7777, Uid: h.Uid, Gid: h.Gid, ModTime: h.ModTime, Format: tar.FormatPAX}
	if h.Mode&^0o7777 != 0 || h.Uid < 0 || h.Gid < 0 {
		return nil, bad("invalid mode or owner")
	}
	switch h.Typeflag {
	case tar.TypeDir, tar.TypeFifo:
	case tar.TypeReg:
		c.Size = h.Size
	case tar.TypeSymlink:
		c.Linkname = h.Linkname
	case tar.TypeLink:
		l, ok := strings.CutPrefix(h.Linkname, prefix)
		if !ok {
			return nil, bad("hard link outside the volume")
		}
		c.Linkname = l
	case tar.TypeChar, tar.TypeBlock:
		c.Devmajor, c.Devminor = h.Devmajor, h.Devminor
	default:
		return nil, bad(fmt.Sprintf("unsupported type %q", h.Typeflag))
	}
	if h.Typeflag != tar.TypeReg && h.Size != 0 {
		return nil, bad("data in an entry that holds none")
	}
	return c, nil
}

// target is one directory a volume is extracted into.
type target struct {
	dir     string // where the volume goes
	existed bool   // dir was there (empty) before
	tmp     string // where it is written until the file is verified
	// dirs are the volume's directories (relative, "." the root) with
	// their headers, to set their owners, modes and times once in place
	dirs      []*tar.Header
	committed bool
}

// prepareTargets checks the directories and makes the temporary ones.
func prepareTargets(dirs []string) ([]*target, error) {
	var ts []*target
	seen := map[string]bool{}
	fail := func(err error) ([]*target, error) {
		for _, t := range ts {
			t.rollback()
		}
		return nil, err
	}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return fail(err)
		}
		if seen[abs] {
			return fail(fmt.Errorf("cannot import into %s twice", d))
		}
		seen[abs] = true
		t := &target{dir: d}
		entries, err := os.ReadDir(d)
		switch {
		case err == nil && len(entries) > 0:
			return fail(fmt.Errorf("cannot import into %s: it is not empty", d))
		case err == nil:
			t.existed = true
			t.tmp, err = os.MkdirTemp(d, ".denv-import-")
		case errors.Is(err, os.ErrNotExist):
			t.tmp, err = os.MkdirTemp(filepath.Dir(d), "."+filepath.Base(d)+".denv-import-")
		}
		if err != nil {
			return fail(fmt.Errorf("cannot import into %s: %w", d, err))
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// commit moves the verified volume into place and sets its directories'
// owners, modes and times, deepest first (after the moves, which change
// the times of the directories they touch).
func (t *target) commit() error {
	t.committed = true
	if t.existed {
		entries, err := os.ReadDir(t.tmp)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := os.Rename(filepath.Join(t.tmp, e.Name()), filepath.Join(t.dir, e.Name())); err != nil {
				return fmt.Errorf("cannot import into %s: %w", t.dir, err)
			}
		}
		if err := os.Remove(t.tmp); err != nil {
			return fmt.Errorf("cannot import into %s: %w", t.dir, err)
		}
	} else if err := os.Rename(t.tmp, t.dir); err != nil {
		return fmt.Errorf("cannot import into %s: %w", t.dir, err)
	}
	for i := len(t.dirs) - 1; i >= 0; i-- {
		h := t.dirs[i]
		if err := setMeta(filepath.Join(t.dir, filepath.FromSlash(strings.TrimSuffix(h.Name, "/"))), h); err != nil {
			return fmt.Errorf("cannot import into %s: %w", t.dir, err)
		}
	}
	return nil
}

// rollback leaves the directory as it was before the import.
func (t *target) rollback() {
	_ = os.RemoveAll(t.tmp)
	if !t.committed {
		return
	}
	if t.existed {
		if entries, err := os.ReadDir(t.dir); err == nil {
			for _, e := range entries {
				_ = os.RemoveAll(filepath.Join(t.dir, e.Name()))
			}
		}
		return
	}
	_ = os.RemoveAll(t.dir)
}

// extractor writes the entries of one volume (nothing when t is nil) and
// checks that each goes inside it: its parent is a directory of the
// volume already written (never a symlink), a hard link points to an
// earlier non-directory.
type extractor struct {
	t       *target
	dirs    map[string]bool
	nondirs map[string]bool
}

// entry writes the entry h, its content read from src and also copied to
// canon.
func (x *extractor) entry(h *tar.Header, canon io.Writer, src io.Reader, buf []byte) error {
	rel := strings.TrimSuffix(h.Name, "/")
	if h.Name == "./" {
		rel = "."
	} else if !x.dirs[path.Dir(rel)] {
		return fmt.Errorf("%w %q: its directory is not in the volume before it", errBadEntry, h.Name)
	} else if x.dirs[rel] || x.nondirs[rel] {
		return fmt.Errorf("%w %q: twice in the volume", errBadEntry, h.Name)
	}
	if h.Typeflag == tar.TypeDir {
		x.dirs[rel] = true
	} else {
		x.nondirs[rel] = true
	}
	if h.Typeflag == tar.TypeLink && !x.nondirs[h.Linkname] {
		return fmt.Errorf("%w %q: hard link to %q, not an earlier file of the volume", errBadEntry, h.Name, h.Linkname)
	}
	var out io.Writer
	var f *os.File
	p := ""
	if x.t != nil {
		p = filepath.Join(x.t.tmp, filepath.FromSlash(rel))
		switch h.Typeflag {
		case tar.TypeDir:
			x.t.dirs = append(x.t.dirs, h)
			if rel == "." {
				return nil
			}
			return os.Mkdir(p, 0o700)
		case tar.TypeReg:
			var err error
			f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				return err
			}
			defer func() { _ = f.Close() }()
			out = f
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
			return setMeta(p, h)
		case tar.TypeLink:
			return os.Link(filepath.Join(x.t.tmp, filepath.FromSlash(h.Linkname)), p)
		case tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
			mode := uint32(unix.S_IFIFO)
			if h.Typeflag == tar.TypeChar {
				mode = unix.S_IFCHR
			} else if h.Typeflag == tar.TypeBlock {
				mode = unix.S_IFBLK
			}
			if err := unix.Mknod(p, mode|0o600, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))); err != nil {
				return &os.PathError{Op: "mknod", Path: p, Err: err}
			}
			return setMeta(p, h)
		}
	}
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	w := canon
	if out != nil {
		w = io.MultiWriter(out, canon)
	}
	n, err := io.CopyBuffer(w, io.LimitReader(src, h.Size), buf)
	if err == nil && n < h.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil || f == nil {
		return err
	}
	return setMeta(p, h)
}

// setMeta gives path the owner, mode and modification time of h (its
// access time is left as it is: it is not kept). The owner comes first:
// chown clears the setuid and setgid bits.
func setMeta(p string, h *tar.Header) error {
	if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(p, uint32(h.Mode&0o7777)); err != nil {
			return &os.PathError{Op: "chmod", Path: p, Err: err}
		}
	}
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(h.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: p, Err: err}
	}
	return nil
}

// PeekManifest reads the manifest at the start of the snapshot file r
// and returns it (checked, as [NewReader] does) with a reader that yields
// the whole file again from its first byte: for a caller that must know
// the volumes before it hands a stream (standard input) to the importer.
func PeekManifest(r io.Reader) (Manifest, io.Reader, error) {
	var seen bytes.Buffer
	// one decoder goroutine: it reads no further ahead than it must
	rd, err := newReader(io.TeeReader(r, &seen), 1)
	if err != nil {
		return Manifest{}, nil, err
	}
	m := rd.Manifest()
	rd.Close()
	return m, io.MultiReader(&seen, r), nil
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
