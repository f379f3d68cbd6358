// Package backendtest helps end-to-end tests that need a real Docker engine:
// [Require] gives a [backend.Backend] or skips the test when no daemon is
// reachable (fails it instead when DENV_E2E=require), [EchoImage] provides
// a tiny local test image, and [ProjectName] / [DownOnCleanup] give each
// test its own compose project and remove it afterwards.
package backendtest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alebellu/denv/backend"
)

// EnvVar is the environment variable that decides whether e2e tests run:
// "skip" skips every one of them (make unit) even when a daemon answers;
// "require" makes a missing daemon a failure; otherwise they run when a
// daemon is reachable and are skipped when none is.
const EnvVar = "DENV_E2E"

// EchoImageRef is the image built by [EchoImage].
const EchoImageRef = "denv-test/echo:latest"

// EchoPort is the port the echo server listens on (and EXPOSEs).
const EchoPort = 8080

// echoHashLabel is the image label holding the hash of the echo image's
// inputs, to rebuild it only when they change.
const echoHashLabel = "denv.test.echo.hash"

// Require returns a Backend connected to the user's Docker daemon, closed
// when the test ends. Every test that needs Docker goes through it. With
// DENV_E2E=skip the test is skipped without contacting any daemon. When no
// daemon is reachable, the test is skipped with a message saying why,
// unless DENV_E2E=require, in which case it fails. Tests run with -short
// are skipped too, unless DENV_E2E=require. Compose progress is written to
// the test log.
func Require(t testing.TB) *backend.Backend {
	t.Helper()
	if os.Getenv(EnvVar) == "skip" {
		t.Skipf("skipping end-to-end test: %s=skip", EnvVar)
	}
	required := os.Getenv(EnvVar) == "require"
	if testing.Short() && !required {
		t.Skipf("skipping end-to-end test in -short mode (set %s=require to run it)", EnvVar)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := backend.New(ctx, backend.WithProgress(newTestLog(t)))
	if err != nil {
		if required {
			t.Fatalf("%s=require but no usable Docker daemon: %v", EnvVar, err)
		}
		t.Skipf("skipping end-to-end test: %v (set %s=require to make this a failure)", err, EnvVar)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// ProjectName returns a compose project name unique to this test run,
// derived from the test name.
func ProjectName(t testing.TB) string {
	t.Helper()
	var sb strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			sb.WriteRune(r)
		case sb.Len() > 0 && !strings.HasSuffix(sb.String(), "-"):
			sb.WriteByte('-')
		}
		if sb.Len() >= 32 {
			break
		}
	}
	random := make([]byte, 3)
	if _, err := rand.Read(random); err != nil {
		t.Fatalf("cannot generate a project name: %v", err)
	}
	return "denvtest-" + strings.Trim(sb.String(), "-") + "-" + hex.EncodeToString(random)
}

// DownOnCleanup removes the environment name, volumes included, when the
// test ends.
func DownOnCleanup(t testing.TB, b *backend.Backend, name string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := b.Down(ctx, name, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// EchoImage makes sure the local image denv-test/echo:latest exists and is
// up to date, and returns its reference. The image holds only /app, a
// static build of backend/testdata/echo (an HTTP server on 8080 answering
// GET / with its hostname and PUT/GET /file/{name} under /data), plus empty
// /data and /tmp directories; it is made with `docker import` (nothing is
// pulled) and rebuilt only when the hash of its inputs changes.
func EchoImage(t testing.TB, b *backend.Backend) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := buildEchoImage(ctx, b); err != nil {
		t.Fatalf("cannot build the test image %s: %v", EchoImageRef, err)
	}
	return EchoImageRef
}

func buildEchoImage(ctx context.Context, b *backend.Backend) error {
	srcDir, err := echoSourceDir()
	if err != nil {
		return err
	}
	src, err := os.ReadFile(filepath.Join(srcDir, "main.go"))
	if err != nil {
		return err
	}
	sum := sha256.New()
	fmt.Fprintf(sum, "%s linux/%s\n", runtime.Version(), runtime.GOARCH)
	sum.Write(src)
	hash := hex.EncodeToString(sum.Sum(nil))[:32]

	labels, found, err := b.ImageLabels(ctx, EchoImageRef)
	if err != nil {
		return err
	}
	if found && labels[echoHashLabel] == hash {
		return nil
	}

	tmp, err := os.MkdirTemp("", "denv-echo-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	bin := filepath.Join(tmp, "app")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build of %s failed: %v: %s", srcDir, err, strings.TrimSpace(string(out)))
	}
	rootfs, err := rootfsTar(bin)
	if err != nil {
		return err
	}
	return b.ImportImage(ctx, EchoImageRef, rootfs,
		`ENTRYPOINT ["/app"]`,
		fmt.Sprintf("EXPOSE %d", EchoPort),
		fmt.Sprintf("LABEL %s=%s", echoHashLabel, hash),
	)
}

// statics caches the binaries built by StaticBinary, by package, for the
// life of the test binary.
var statics = struct {
	mu    sync.Mutex
	paths map[string]string
	errs  map[string]error
}{paths: map[string]string{}, errs: map[string]error{}}

// StaticBinary builds the Go package pkg (an import path) with
// CGO_ENABLED=0, once per test binary, and returns the executable's path:
// a static copier keeps its image to one file, like `make build`'s denv.
func StaticBinary(t testing.TB, pkg string) string {
	t.Helper()
	statics.mu.Lock()
	defer statics.mu.Unlock()
	if _, done := statics.paths[pkg]; !done {
		statics.paths[pkg], statics.errs[pkg] = buildStatic(pkg)
	}
	if err := statics.errs[pkg]; err != nil {
		t.Fatalf("cannot build %s statically: %v", pkg, err)
	}
	return statics.paths[pkg]
}

func buildStatic(pkg string) (string, error) {
	dir, err := os.MkdirTemp("", "denv-static-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// echoSourceDir finds backend/testdata/echo next to this source file.
func echoSourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the backendtest sources")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "testdata", "echo")
	if _, err := os.Stat(filepath.Join(dir, "main.go")); err != nil {
		return "", fmt.Errorf("cannot find the echo server sources: %w", err)
	}
	return dir, nil
}

// rootfsTar returns a tar holding /app (the binary), /data and /tmp.
func rootfsTar(bin string) (*bytes.Buffer, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	for _, h := range []*tar.Header{
		{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: mtime},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "app", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data)), ModTime: mtime}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// testLog is an io.Writer that sends whole lines to t.Log, and drops output
// once the test is over (compose may still report after a failure).
type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	buf  []byte
	done bool
}

func newTestLog(t testing.TB) *testLog {
	l := &testLog{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.buf) > 0 {
			t.Log(string(l.buf))
		}
		l.done = true
	})
	return l
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return len(p), nil
	}
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.t.Log(strings.TrimRight(string(l.buf[:i]), "\r"))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}
