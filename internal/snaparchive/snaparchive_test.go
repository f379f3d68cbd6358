package snaparchive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/alebellu/denv/internal/copier"
)

// makeTree fills dir with every kind of entry the format keeps.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	big := make([]byte, 3<<20+777)
	_, _ = rand.Read(big)
	must(t, os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o640))
	must(t, os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(strings.Repeat("hello snapshot\n", 1000)), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600))
	must(t, os.MkdirAll(filepath.Join(dir, "a/empty"), 0o750))
	must(t, os.WriteFile(filepath.Join(dir, "a/exec"), []byte("#!x\n"), 0o755))
	must(t, syscall.Chmod(filepath.Join(dir, "a/exec"), 0o4755))
	must(t, os.Symlink("../big.bin", filepath.Join(dir, "a/link")))
	must(t, os.Symlink("/nowhere", filepath.Join(dir, "dangling")))
	must(t, os.Link(filepath.Join(dir, "a/exec"), filepath.Join(dir, "hard")))
	must(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o620))
	must(t, os.MkdirAll(filepath.Join(dir, "sticky"), 0o755))
	must(t, syscall.Chmod(filepath.Join(dir, "sticky"), 0o1777))
	old := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	must(t, os.Chtimes(filepath.Join(dir, "big.bin"), old, old))
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(t, os.Lchown(filepath.Join(dir, "a/link"), 1234, 5678))
		must(t, os.Chown(filepath.Join(dir, "a/empty"), 999, 998))
		must(t, os.Chown(filepath.Join(dir, "hello.txt"), 70000, 70001))
	}
	must(t, os.Chmod(filepath.Join(dir, "a"), 0o500)) // read-only: its entries must still be written
	must(t, os.Chtimes(dir, old, old))
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dir, "a"), 0o700) })
}

func listing(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	must(t, copier.Checksum(dir, &b))
	return b.String()
}

func testManifest(vols ...string) Manifest {
	m := Manifest{Name: "shop-1", Environment: "shop", Definition: Definition{Name: "shop", Digest: "sha256:abc"},
		Project: "name: shop\nservices: {}\n", Created: time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)}
	for _, v := range vols {
		m.Volumes = append(m.Volumes, Volume{Name: v})
	}
	return m
}

// export writes a snapshot file of two volumes, a full tree and an empty
// one, and returns it with the source directories.
func export(t *testing.T) ([]byte, []string, Manifest) {
	t.Helper()
	src1, src2 := t.TempDir(), t.TempDir()
	makeTree(t, src1)
	var file bytes.Buffer
	m, err := Write(&file, testManifest("db-data", "cache"), []string{src1, src2}, WriteOptions{})
	must(t, err)
	return file.Bytes(), []string{src1, src2}, m
}

// TestRoundTrip exports two trees, imports them into a missing directory
// and an empty one, and compares the checksum listings and the sums.
func TestRoundTrip(t *testing.T) {
	file, srcs, m := export(t)
	for i, src := range srcs {
		want, err := TreeSum(src)
		must(t, err)
		if m.Volumes[i].SHA256 != want.SHA256 || m.Volumes[i].Bytes != want.Bytes || m.Volumes[i].Files != want.Files {
			t.Errorf("volume %d: written %+v, tree %+v", i, m.Volumes[i], want)
		}
	}
	if m.Volumes[0].Files != 12-boolInt(os.Geteuid() != 0) || m.Volumes[0].Bytes != 3<<20+777+15000+4 {
		t.Errorf("volume 0 measures %+v", m.Volumes[0])
	}

	r, err := NewReader(bytes.NewReader(file))
	must(t, err)
	defer r.Close()
	head := r.Manifest()
	if head.Name != "shop-1" || head.Project != m.Project || !head.Created.Equal(m.Created) || head.Volumes[0].SHA256 != "" || head.Volumes[0].Bytes != m.Volumes[0].Bytes {
		t.Errorf("manifest read %+v, written %+v", head, m)
	}
	base := t.TempDir()
	dst1, dst2 := filepath.Join(base, "new"), filepath.Join(base, "empty")
	must(t, os.Mkdir(dst2, 0o755))
	got, err := r.Extract(context.Background(), []string{dst1, dst2}, ExtractOptions{})
	must(t, err)
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dst1, "a"), 0o700) })
	for i := range srcs {
		if got.Volumes[i] != m.Volumes[i] {
			t.Errorf("volume %d: imported %+v, exported %+v", i, got.Volumes[i], m.Volumes[i])
		}
	}
	for i, dst := range []string{dst1, dst2} {
		if a, b := listing(t, srcs[i]), listing(t, dst); a != b {
			t.Errorf("%s: listings differ:\nsource:\n%s\nimport:\n%s", dst, a, b)
		}
	}
	a, _ := os.Stat(filepath.Join(dst1, "a/exec"))
	b, _ := os.Stat(filepath.Join(dst1, "hard"))
	if !os.SameFile(a, b) {
		t.Errorf("hard link not kept")
	}
	if entries, _ := os.ReadDir(base); len(entries) != 2 {
		t.Errorf("temporary directories left: %v", entries)
	}

	// the full tree into an existing empty directory (a mounted volume
	// in the engine): its entries are moved up from a temporary one
	r2, err := NewReader(bytes.NewReader(file))
	must(t, err)
	defer r2.Close()
	base2 := t.TempDir()
	dst3 := filepath.Join(base2, "vol")
	must(t, os.Mkdir(dst3, 0o700))
	_, err = r2.Extract(context.Background(), []string{dst3, filepath.Join(base2, "other")}, ExtractOptions{})
	must(t, err)
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dst3, "a"), 0o700) })
	if a, b := listing(t, srcs[0]), listing(t, dst3); a != b {
		t.Errorf("%s: listings differ:\nsource:\n%s\nimport:\n%s", dst3, a, b)
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1 // the device node is made by root only
	}
	return 0
}

// importInto extracts file into a missing and an empty directory and
// returns the error, checking that both are left as they were when it
// fails.
func importInto(t *testing.T, file []byte) error {
	t.Helper()
	return importIntoN(t, file, 2)
}

// importIntoN is importInto for a file of one volume (n == 1) or two.
func importIntoN(t *testing.T, file []byte, n int) error {
	t.Helper()
	base := t.TempDir()
	dst1, dst2 := filepath.Join(base, "new"), filepath.Join(base, "empty")
	must(t, os.Mkdir(dst2, 0o755))
	dsts := []string{dst1, dst2}
	if n == 1 {
		dsts = dsts[1:]
	}
	r, err := NewReader(bytes.NewReader(file))
	if err == nil {
		defer r.Close()
		_, err = r.Extract(context.Background(), dsts, ExtractOptions{})
	}
	if err != nil {
		if entries, _ := os.ReadDir(base); len(entries) != 1 || entries[0].Name() != "empty" {
			t.Errorf("after %v: %s holds %v", err, base, entries)
		}
		if entries, _ := os.ReadDir(dst2); len(entries) != 0 {
			t.Errorf("after %v: %s holds %v", err, dst2, entries)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error on several lines: %q", err)
		}
	}
	return err
}

func TestTruncatedRefused(t *testing.T) {
	file, _, _ := export(t)
	for _, n := range []int{0, 1, 10, 100, 1000, len(file) / 3, len(file) / 2, len(file) - 100, len(file) - 10, len(file) - 1} {
		err := importInto(t, file[:n])
		if err == nil {
			t.Errorf("file cut at %d of %d: imported", n, len(file))
			continue
		}
		if !strings.Contains(err.Error(), "truncated") && !strings.Contains(err.Error(), "not a denv snapshot file") {
			t.Errorf("file cut at %d of %d: %v, want truncated", n, len(file), err)
		}
		t.Logf("cut at %d: %v", n, err)
	}
}

func TestFlippedByteRefused(t *testing.T) {
	file, _, _ := export(t)
	// from byte 16: the first bytes of the zstd frame header (its window
	// size) can change without changing anything the file holds
	for _, n := range []int{16, 200, len(file) / 4, len(file) / 2, len(file) - 20, len(file) - 2} {
		bad := bytes.Clone(file)
		bad[n] ^= 0x10
		err := importInto(t, bad)
		if err == nil {
			t.Errorf("byte %d of %d flipped: imported", n, len(file))
			continue
		}
		t.Logf("flipped at %d: %v", n, err)
	}
}

// rewrite decompresses file, applies edit to the archive and compresses
// it again: a file whose zstd checksums are right but whose content is
// not.
func rewrite(t *testing.T, file []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(file))
	must(t, err)
	defer zr.Close()
	plain, err := io.ReadAll(zr)
	must(t, err)
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out)
	must(t, err)
	_, err = zw.Write(edit(plain))
	must(t, err)
	must(t, zw.Close())
	return out.Bytes()
}

func TestChecksumMismatchRefused(t *testing.T) {
	file, _, _ := export(t)
	bad := rewrite(t, file, func(b []byte) []byte {
		return bytes.Replace(b, []byte("hello snapshot"), []byte("hellO snapshot"), 1)
	})
	if err := importInto(t, bad); err == nil || err.Error() != "checksum mismatch in volume db-data" {
		t.Errorf("altered content: err = %v", err)
	}
}

func TestTrailingDataRefused(t *testing.T) {
	file, _, _ := export(t)
	bad := rewrite(t, file, func(b []byte) []byte { return append(b, "more"...) })
	if err := importInto(t, bad); err == nil || !strings.Contains(err.Error(), "data after its end") {
		t.Errorf("trailing data: err = %v", err)
	}
}

// archive builds a snapshot file from a manifest and raw tar entries.
func archive(t *testing.T, m any, entries func(tw *tar.Writer)) []byte {
	t.Helper()
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	data, _ := json.Marshal(m)
	must(t, writeRecord(tw, manifestName, data))
	entries(tw)
	must(t, tw.Close())
	var out bytes.Buffer
	zw, _ := zstd.NewWriter(&out)
	_, _ = zw.Write(plain.Bytes())
	must(t, zw.Close())
	return out.Bytes()
}

func TestWrongVersionRefused(t *testing.T) {
	m := testManifest("data")
	m.Format = 2
	file := archive(t, map[string]any{"format": 2, "name": "x", "volumes": []any{}, "new_field": true}, func(*tar.Writer) {})
	err := importInto(t, file)
	if err == nil || err.Error() != "snapshot file format 2 is not supported: this denv reads format 1" {
		t.Errorf("format 2: err = %v", err)
	}
	if err := importInto(t, []byte("PK\x03\x04 a zip file")); err == nil || !strings.Contains(err.Error(), "not a denv snapshot file") {
		t.Errorf("not zstd: err = %v", err)
	}
}

// TestHostileEntriesRefused: entries that would write outside the volume
// are refused, with a valid checksum, and nothing is written.
func TestHostileEntriesRefused(t *testing.T) {
	m := testManifest("data")
	m.Format = Version
	m.Volumes[0].Files, m.Volumes[0].Bytes = 2, 1
	now := time.Now()
	root := func(tw *tar.Writer) {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "volumes/data/", Mode: 0o755, ModTime: now}))
	}
	for name, entries := range map[string]func(*tar.Writer){
		"dotdot": func(tw *tar.Writer) {
			root(tw)
			must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "volumes/data/../../x", Mode: 0o644, Size: 1, ModTime: now}))
			_, _ = tw.Write([]byte("x"))
		},
		"through symlink": func(tw *tar.Writer) {
			root(tw)
			must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "volumes/data/l", Linkname: "/tmp", ModTime: now}))
			must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "volumes/data/l/x", Mode: 0o644, Size: 1, ModTime: now}))
			_, _ = tw.Write([]byte("x"))
		},
		"hard link out": func(tw *tar.Writer) {
			root(tw)
			must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: "volumes/data/l", Linkname: "/etc/passwd", ModTime: now}))
		},
		"root missing": func(tw *tar.Writer) {
			must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "volumes/data/x", Mode: 0o644, Size: 1, ModTime: now}))
			_, _ = tw.Write([]byte("x"))
		},
	} {
		err := importIntoN(t, archive(t, m, entries), 1)
		if err == nil || !strings.Contains(err.Error(), "snapshot file corrupted in volume data") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestStream writes through a pipe and reads from one (no seeking), with
// the manifest peeked first, through the engine's commands.
func TestStream(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	m := testManifest("db-data")
	head, _ := json.Marshal(m)
	pr, pw := io.Pipe()
	var exportErr bytes.Buffer
	go func() {
		pw.CloseWithError(ExportCommand([]string{ProgressFlag, src}, bytes.NewReader(head), pw, &exportErr))
	}()
	peeked, stream, err := PeekManifest(pr)
	must(t, err)
	if peeked.Name != "shop-1" || len(peeked.Volumes) != 1 || peeked.Volumes[0].Name != "db-data" {
		t.Fatalf("peeked manifest %+v", peeked)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	var out, progress bytes.Buffer
	must(t, ImportCommand(context.Background(), []string{ProgressFlag, dst}, stream, &out, &progress))
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dst, "a"), 0o700) })
	if a, b := listing(t, src), listing(t, dst); a != b {
		t.Errorf("listings differ:\nsource:\n%s\nimport:\n%s", a, b)
	}
	var got Manifest
	must(t, json.Unmarshal(out.Bytes(), &got))
	want, err := TreeSum(src)
	must(t, err)
	if got.Volumes[0].SHA256 != want.SHA256 {
		t.Errorf("imported manifest %+v, tree %+v", got.Volumes[0], want)
	}
	var sum bytes.Buffer
	must(t, SumCommand([]string{dst}, &sum))
	if !strings.Contains(sum.String(), want.SHA256) {
		t.Errorf("sum of the import %s, want %s", sum.String(), want.SHA256)
	}
	for name, lines := range map[string]string{"export": exportErr.String(), "import": progress.String()} {
		l := strings.Split(strings.TrimSpace(lines), "\n")
		if l[0] != "total 0 "+itoa(want.Bytes) || l[len(l)-2] != "done 0 "+itoa(want.Bytes) || l[len(l)-1] != "finished" {
			t.Errorf("%s progress %q", name, l)
		}
	}
}

func itoa(n int64) string { return strings.TrimSpace(strings.Repeat(" ", 0) + jsonNum(n)) }

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCancelledImportLeavesNothing: a cancelled context stops the import
// and leaves the target as it was.
func TestCancelledImportLeavesNothing(t *testing.T) {
	file, _, _ := export(t)
	r, err := NewReader(bytes.NewReader(file))
	must(t, err)
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	base := t.TempDir()
	_, err = r.Extract(ctx, []string{filepath.Join(base, "a"), filepath.Join(base, "b")}, ExtractOptions{})
	if err == nil || !strings.Contains(err.Error(), "import of volume db-data stopped: context canceled") {
		t.Errorf("cancelled import: err = %v", err)
	}
	if entries, _ := os.ReadDir(base); len(entries) != 0 {
		t.Errorf("cancelled import left %v", entries)
	}
}
