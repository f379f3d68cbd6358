package rootfs

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// buildGo builds a tiny Go program (which uses package net, so that with
// cgo on it links libc dynamically) with the given CGO_ENABLED.
func buildGo(t *testing.T, cgo string) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	if cgo == "1" {
		if _, err := exec.LookPath("gcc"); err != nil {
			t.Skip("no C compiler for a cgo build")
		}
	}
	dir := t.TempDir()
	src := "package main\n\nimport (\n\t\"fmt\"\n\t\"net\"\n)\n\nfunc main() { fmt.Println(net.ParseIP(\"127.0.0.1\")) }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", "tiny", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "tiny")
}

// entries reads a tar archive into path -> header and regular files'
// contents.
func entries(t *testing.T, data []byte) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	var hs []*tar.Header
	bodies := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hs, bodies
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			bodies[h.Name] = b
		}
	}
}

func writeTar(t *testing.T, l *Layout) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := l.WriteTar(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestStaticExecutableIsOneFile(t *testing.T) {
	exe := buildGo(t, "0")
	l, err := For(exe, "copier")
	if err != nil {
		t.Fatal(err)
	}
	if l.Dynamic || len(l.Files) != 1 || l.Files["copier"] == "" || len(l.LibraryPath) != 0 {
		t.Fatalf("layout of a static executable: %+v, want only copier", l)
	}
	l.Dirs = []string{"src", "tmp"}
	hs, bodies := entries(t, writeTar(t, l))
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
	}
	if want := []string{"src/", "tmp/", "copier"}; !slices.Equal(names, want) {
		t.Errorf("archive entries %q, want %q", names, want)
	}
	want, _ := os.ReadFile(exe)
	if !bytes.Equal(bodies["copier"], want) {
		t.Errorf("copier in the archive is %d bytes, not the executable's %d", len(bodies["copier"]), len(want))
	}
	if hs[1].Mode != 0o1777 || hs[2].Mode != 0o755 {
		t.Errorf("modes: tmp %o, copier %o; want 1777 and 755", hs[1].Mode, hs[2].Mode)
	}
}

// checkDynamic checks the layout of a dynamically linked executable: its
// interpreter (PT_INTERP) at its path and a libc, each the bytes of the
// host file it resolves to, and every file a regular file or a hard link
// in a deterministic archive.
func checkDynamic(t *testing.T, exe string) {
	t.Helper()
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	interp, err := interpreter(f)
	_ = f.Close()
	if err != nil || interp == "" {
		t.Fatalf("%s: want a dynamically linked executable (interpreter %q, %v)", exe, interp, err)
	}
	l, err := For(exe, "copier")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Dynamic {
		t.Errorf("layout says %s is static", exe)
	}
	data := writeTar(t, l)
	if again := writeTar(t, l); !bytes.Equal(data, again) {
		t.Error("two archives of one layout differ")
	}
	l2, err := For(exe, "copier")
	if err != nil {
		t.Fatal(err)
	}
	if again := writeTar(t, l2); !bytes.Equal(data, again) {
		t.Error("the archives of two layouts of one executable differ")
	}
	hs, bodies := entries(t, data)
	var names []string
	byName := map[string]*tar.Header{}
	for _, h := range hs {
		names = append(names, h.Name)
		byName[h.Name] = h
		if h.ModTime.Unix() != 0 || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: time %v, owner %d:%d; want fixed ones", h.Name, h.ModTime, h.Uid, h.Gid)
		}
		if h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeLink {
			t.Errorf("%s: type %c, want only directories, files and hard links", h.Name, h.Typeflag)
		}
	}
	t.Logf("%s: %q (library path %q)", exe, names, l.LibraryPath)
	body := func(name string) []byte {
		h := byName[name]
		if h != nil && h.Typeflag == tar.TypeLink {
			return bodies[h.Linkname]
		}
		return bodies[name]
	}
	check := func(name string) {
		t.Helper()
		host, err := filepath.EvalSymlinks("/" + name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(host)
		if err != nil {
			t.Fatal(err)
		}
		if got := body(name); !bytes.Equal(got, want) {
			t.Errorf("%s in the archive: %d bytes, want the %d of %s", name, len(got), len(want), host)
		}
	}
	check(strings.TrimPrefix(interp, "/"))
	var libc string
	for _, n := range names {
		if strings.HasSuffix(n, "/libc.so.6") {
			libc = n
		}
	}
	if libc == "" {
		t.Fatalf("no libc.so.6 in %q", names)
	}
	check(libc)
	// directories come first, then files, each group sorted
	var dirs, files []string
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			if len(files) > 0 {
				t.Errorf("directory %s after the files", n)
			}
			dirs = append(dirs, n)
		} else {
			files = append(files, n)
		}
	}
	if !slices.IsSorted(dirs) || !slices.IsSorted(files) {
		t.Errorf("entries not sorted: %q", names)
	}
}

func TestDynamicGoBinaryGetsLoaderAndLibc(t *testing.T) {
	checkDynamic(t, buildGo(t, "1"))
}

func TestBinLsGetsLoaderAndLibc(t *testing.T) {
	if _, err := os.Stat("/bin/ls"); err != nil {
		t.Skip("no /bin/ls")
	}
	checkDynamic(t, "/bin/ls")
}

// TestMissingLibraryIsOneLine: a root holding the executable and its
// loader but not its libraries.
func TestMissingLibraryIsOneLine(t *testing.T) {
	exe := buildGo(t, "1")
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	interp, _ := interpreter(f)
	_ = f.Close()
	root := t.TempDir()
	loader, err := os.ReadFile(interp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(interp)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, interp), loader, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = forRoot(root, exe, "copier")
	if err == nil {
		t.Fatal("no error for a root without libc")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "cannot find library libc.so.6") || !strings.HasPrefix(msg, exe+": ") {
		t.Errorf("error %q: want one line naming the executable and libc.so.6", msg)
	}

	// and without the loader: that is what is named
	if err := os.Remove(filepath.Join(root, interp)); err != nil {
		t.Fatal(err)
	}
	_, err = forRoot(root, exe, "copier")
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "program interpreter "+interp) {
		t.Errorf("error %v: want one line naming the missing interpreter %s", err, interp)
	}
}

func TestNotAnExecutable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := For(p, "copier")
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "is not a Linux executable") {
		t.Errorf("error %v: want one line saying it is not a Linux executable", err)
	}
}

func TestReadCacheFindsLibc(t *testing.T) {
	if _, err := os.Stat("/etc/ld.so.cache"); err != nil {
		t.Skip("no /etc/ld.so.cache")
	}
	c := readCache("/etc/ld.so.cache")
	paths := c["libc.so.6"]
	if len(paths) == 0 {
		t.Fatalf("libc.so.6 not in the parsed cache (%d names)", len(c))
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("cache lists %s: %v", p, err)
		}
	}
}
