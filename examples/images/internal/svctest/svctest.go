// Package svctest runs the demo programs as real processes in tests: a
// main package cannot be imported, so a test that needs db or worker
// builds them and starts them on free local ports.
package svctest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Bin is a directory of built demo programs.
type Bin string

// Build builds the named programs of examples/images into a new temporary
// directory. It must run in a test of examples/images/NAME (it builds from
// the parent directory). Remove the directory with [Bin.Remove].
func Build(names ...string) (Bin, error) {
	dir, err := os.MkdirTemp("", "demo-bin-")
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "./"+n)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return Bin(dir), nil
}

// Remove deletes the directory.
func (b Bin) Remove() { os.RemoveAll(string(b)) }

// Start runs the program name on a free local port with env and waits until
// it answers /health; it returns its base URL and a function killing it
// (also called at the end of the test).
func (b Bin) Start(t *testing.T, name string, env ...string) (string, func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(filepath.Join(string(b), name))
	cmd.Env = append(os.Environ(), append(env, "LISTEN_ADDR="+addr)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := func() { cmd.Process.Kill(); cmd.Wait() }
	t.Cleanup(kill)
	u := "http://" + addr
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(u + "/health"); err == nil {
			resp.Body.Close()
			return u, kill
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start on %s", name, addr)
		}
	}
}

// Run is a TestMain for a demo program's tests that need the named
// sibling programs: it builds them into *bin, runs the tests, removes
// them, and returns the exit code for os.Exit.
func Run(m *testing.M, bin *Bin, names ...string) int {
	var err error
	if *bin, err = Build(names...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer bin.Remove()
	return m.Run()
}

// Do sends one HTTP request and returns the status code and the body.
func Do(t *testing.T, method, url string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
