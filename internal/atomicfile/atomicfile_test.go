package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	if err := os.WriteFile(name, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(name, []byte("new"), 0o644, ".f."); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil || string(got) != "new" {
		t.Fatalf("content %q, %v; want new", got, err)
	}
	if st, _ := os.Stat(name); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only f", len(ents))
	}
}

// TestWriteFailureLeavesNothing: a rename that cannot happen (onto a
// non-empty directory) leaves the target and no temporary file.
func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(name, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(name, []byte("new"), 0o644, ".d."); err == nil {
		t.Fatal("Write over a non-empty directory succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != "d" {
		t.Errorf("directory holds %v, want only d", ents)
	}
}

// TestWriteOverKeepsMode: a 0600 file written over stays 0600 (it may hold
// secrets), through a symlink too, which stays a symlink.
func TestWriteOverKeepsMode(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	if err := os.WriteFile(name, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(name, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{name, link} {
		if err := WriteOver(p, []byte("new "+p), 0o644, ".f."); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(name)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("after writing over %s: mode %v, %v; want 0600", p, st.Mode(), err)
		}
		if got, _ := os.ReadFile(name); string(got) != "new "+p {
			t.Errorf("content %q, want %q", got, "new "+p)
		}
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink replaced: %v, %v", st.Mode(), err)
	}
	if err := WriteOver(filepath.Join(dir, "new"), []byte("x"), 0o644, ".f."); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "new")); st.Mode().Perm() != 0o644 {
		t.Errorf("new file mode %v, want 0644", st.Mode())
	}
	if err := WriteOver(dir, []byte("x"), 0o644, ".f."); err == nil {
		t.Error("writing over a directory succeeded")
	}
}

// TestWriteOverDevice: /dev/null is written into, not replaced by a
// regular file (as root that would replace the system's /dev/null); a FIFO
// receives the bytes.
func TestWriteOverDevice(t *testing.T) {
	dir := t.TempDir()
	null := filepath.Join(dir, "null")
	if err := os.Symlink("/dev/null", null); err != nil {
		t.Fatal(err)
	}
	if err := WriteOver(null, []byte("x"), 0o644, ".n."); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat("/dev/null"); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a device: %v, %v", st.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the symlink", len(entries))
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	got := make(chan []byte)
	go func() {
		data, _ := os.ReadFile(fifo)
		got <- data
	}()
	if err := WriteOver(fifo, []byte("through the fifo"), 0o644, ".f."); err != nil {
		t.Fatal(err)
	}
	if data := <-got; string(data) != "through the fifo" {
		t.Errorf("fifo reader got %q", data)
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo replaced: %v, %v", st.Mode(), err)
	}
}
