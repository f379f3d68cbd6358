package copier

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listing is the checksum listing of root, its own line included.
func listing(t *testing.T, root string) string {
	t.Helper()
	var b bytes.Buffer
	must(t, Checksum(root, &b))
	return b.String()
}

// oldTree fills dst with what a restore replaces: a file, a directory
// (read-only when root, as the copier runs), a symlink, and its own mode
// and time.
func oldTree(t *testing.T, dst string) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(dst, "old"), []byte("old data"), 0o640))
	must(t, os.MkdirAll(filepath.Join(dst, "dir/ro"), 0o755))
	must(t, os.WriteFile(filepath.Join(dst, "dir/ro/f"), []byte("f"), 0o644))
	must(t, os.Symlink("old", filepath.Join(dst, "link")))
	if os.Geteuid() == 0 {
		must(t, os.Chmod(filepath.Join(dst, "dir/ro"), 0o500))
	}
	must(t, os.Chmod(dst, 0o751))
	old := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	must(t, os.Chtimes(dst, old, old))
}

// newTree fills src with what a snapshot holds.
func newTree(t *testing.T, src string) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(src, "new"), bytes.Repeat([]byte("n"), 1<<20), 0o600))
	must(t, os.MkdirAll(filepath.Join(src, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "d/old"), []byte("not the old one"), 0o644))
	must(t, os.Chmod(src, 0o700))
}

// withBeside is the arguments of ReplaceCommand, with BesideFlag when
// beside.
func withBeside(beside bool, args ...string) []string {
	if beside {
		return append([]string{BesideFlag}, args...)
	}
	return args
}

// noAside fails if a directory of ReplaceCommand is left in dst or
// beside it.
func noAside(t *testing.T, dst string) {
	t.Helper()
	for _, dir := range []string{dst, filepath.Dir(dst)} {
		left, err := filepath.Glob(filepath.Join(dir, AsidePrefix+"*"))
		if err != nil || len(left) > 0 {
			t.Errorf("left in %s: %v (%v)", dir, left, err)
		}
	}
}

// goAhead is the input of a caller that gave the go-ahead and stays,
// until the test ends.
func goAhead(t *testing.T) io.Reader {
	r, w := io.Pipe()
	go func() { _, _ = io.WriteString(w, "go\n") }()
	t.Cleanup(func() { _ = w.Close() })
	return r
}

// TestReplaceCommand: every destination ends as a faithful copy of its
// source (no former entry, no aside directory left), "finished" last.
func TestReplaceCommand(t *testing.T) {
	for _, beside := range []bool{false, true} {
		t.Run(fmt.Sprintf("beside=%v", beside), func(t *testing.T) {
			src1, dst1, src2, dst2 := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
			newTree(t, src1)
			must(t, os.WriteFile(filepath.Join(src2, "x"), []byte("x"), 0o644))
			oldTree(t, dst1)
			oldTree(t, dst2)
			var out bytes.Buffer
			must(t, ReplaceCommand(withBeside(beside, WaitFlag, src1, dst1, src2, dst2), goAhead(t), &out))
			for _, p := range [][2]string{{src1, dst1}, {src2, dst2}} {
				if want, got := listing(t, p[0]), listing(t, p[1]); want != got {
					t.Errorf("%s: listings differ:\nsource:\n%s\nreplaced:\n%s", p[1], want, got)
				}
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if lines[len(lines)-1] != KindFinished {
				t.Errorf("last event %q, want %s", lines[len(lines)-1], KindFinished)
			}
			noAside(t, dst1)
		})
	}
}

// TestReplaceCommandFailsAsItWas: a source that cannot be read fails the
// replacement after the first pair was copied, and both destinations are
// back as they were (contents, modes, owners, times of the roots too).
func TestReplaceCommandFailsAsItWas(t *testing.T) {
	for _, beside := range []bool{false, true} {
		t.Run(fmt.Sprintf("beside=%v", beside), func(t *testing.T) {
			src1, dst1, dst2 := t.TempDir(), t.TempDir(), t.TempDir()
			newTree(t, src1)
			oldTree(t, dst1)
			oldTree(t, dst2)
			want1, want2 := listing(t, dst1), listing(t, dst2)
			var out bytes.Buffer
			err := ReplaceCommand(withBeside(beside, WaitFlag, src1, dst1, filepath.Join(t.TempDir(), "missing"), dst2), goAhead(t), &out)
			if err == nil || !strings.Contains(err.Error(), "every destination is as it was") {
				t.Fatalf("ReplaceCommand with a missing source: err = %v, want a failure that undid everything", err)
			}
			if got := listing(t, dst1); got != want1 {
				t.Errorf("%s not as it was:\nbefore:\n%s\nafter:\n%s", dst1, want1, got)
			}
			if got := listing(t, dst2); got != want2 {
				t.Errorf("%s not as it was:\nbefore:\n%s\nafter:\n%s", dst2, want2, got)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if lines[len(lines)-1] != KindUndone {
				t.Errorf("last event %q, want %s", lines[len(lines)-1], KindUndone)
			}
			noAside(t, dst1)
		})
	}
}

// abortWriter closes abort when the first progress line is written: the
// copy has begun.
type abortWriter struct {
	bytes.Buffer
	abort chan struct{}
}

func (w *abortWriter) Write(b []byte) (int, error) {
	if w.Len() == 0 {
		close(w.abort)
	}
	return w.Buffer.Write(b)
}

// TestReplaceInterrupted: stopped once copying, the destination is as it
// was.
func TestReplaceInterrupted(t *testing.T) {
	for _, beside := range []bool{false, true} {
		t.Run(fmt.Sprintf("beside=%v", beside), func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			newTree(t, src)
			oldTree(t, dst)
			want := listing(t, dst)
			out := &abortWriter{abort: make(chan struct{})}
			err := replaceTrees([]string{src, dst}, out.abort, out, beside)
			if err == nil || !strings.Contains(err.Error(), "interrupted") {
				t.Fatalf("interrupted replacement: err = %v", err)
			}
			if got := listing(t, dst); got != want {
				t.Errorf("%s not as it was:\nbefore:\n%s\nafter:\n%s", dst, want, got)
			}
			noAside(t, dst)
		})
	}
}

// TestReplaceCommandWaitsForGo: with --wait, the end of the input
// before the go-ahead changes nothing.
func TestReplaceCommandWaitsForGo(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	newTree(t, src)
	oldTree(t, dst)
	want := listing(t, dst)
	if err := ReplaceCommand([]string{WaitFlag, src, dst}, strings.NewReader(""), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "copy not started") {
		t.Fatalf("ReplaceCommand without go-ahead: err = %v", err)
	}
	if got := listing(t, dst); got != want {
		t.Errorf("%s changed before the go-ahead", dst)
	}
}
