package copier

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCopyIsFaithful copies a tree with every kind of entry and compares the
// checksum listings of both trees.
func TestCopyIsFaithful(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	big := make([]byte, chunk+12345) // more than one chunk
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(src, "big.bin"), big, 0o640))
	must(t, os.MkdirAll(filepath.Join(src, "a/empty"), 0o750))
	must(t, os.WriteFile(filepath.Join(src, "a/exec"), []byte("#!x\n"), 0o755))
	must(t, syscall.Chmod(filepath.Join(src, "a/exec"), 0o4755))
	must(t, os.Symlink("../big.bin", filepath.Join(src, "a/link")))
	must(t, os.Symlink("/nowhere", filepath.Join(src, "dangling")))
	must(t, os.Link(filepath.Join(src, "a/exec"), filepath.Join(src, "hard")))
	old := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	must(t, os.Chtimes(filepath.Join(src, "big.bin"), old, old))
	if os.Geteuid() == 0 {
		must(t, os.Lchown(filepath.Join(src, "a/link"), 1234, 5678))
		must(t, os.Chown(filepath.Join(src, "a/empty"), 999, 998))
	}
	must(t, os.Chmod(filepath.Join(src, "a"), 0o500)) // read-only dir: its entries must still be created

	var progress bytes.Buffer
	must(t, Copy(src, dst, &progress))
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(src, "a"), 0o700); _ = os.Chmod(filepath.Join(dst, "a"), 0o700) })

	var want, got bytes.Buffer
	must(t, Checksum(src, &want))
	must(t, Checksum(dst, &got))
	if want.String() != got.String() {
		t.Errorf("listings differ:\nsource:\n%s\ncopy:\n%s", want.String(), got.String())
	}
	if n := strings.Count(want.String(), "\n"); n != 8 {
		t.Errorf("source listing has %d entries, want 8:\n%s", n, want.String())
	}
	a, _ := os.Stat(filepath.Join(dst, "a/exec"))
	b, _ := os.Stat(filepath.Join(dst, "hard"))
	if !os.SameFile(a, b) {
		t.Errorf("hard link not kept: a/exec and hard are different files")
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if lines[0] != "total "+itoa(len(big)+4) || lines[len(lines)-1] != "done "+itoa(len(big)+4) {
		t.Errorf("progress = %q, want total/done %d", lines, len(big)+4)
	}
}

// TestCopyMissingSource shows that an error stops the copy.
func TestCopyMissingSource(t *testing.T) {
	if err := Copy(filepath.Join(t.TempDir(), "nope"), t.TempDir(), nil); err == nil {
		t.Fatal("copy of a missing directory succeeded")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
