package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/backendtest"
	"github.com/alebellu/denv/backend/volumecopy"
)

// useStaticCopier points DENV_COPIER at a static build of denv: the clone
// command imports its copier executable into the engine, and the test
// binary (dynamically linked, no copier subcommands) cannot serve.
func useStaticCopier(t testing.TB) string {
	t.Helper()
	path := backendtest.StaticBinary(t, "github.com/alebellu/denv/cmd/denv")
	t.Setenv("DENV_COPIER", path)
	return path
}

// cloneSource runs the clone test definition (a key-value db with a named
// volume and a fixed host port) as a new environment and returns its id
// and endpoint.
func cloneSource(t *testing.T, b *backend.Backend) (id, url string) {
	t.Helper()
	id = backendtest.ProjectName(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kv.denv")
	def := fmt.Sprintf("IMAGE ex/db VOLUME data:/data PORT %d:8080\nEXPOSE db\n", port)
	if err := os.WriteFile(path, []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	downOnCleanup(t, b, id)
	out := mustDenv(t, "run", "-n", id, path)
	return id, endpoint(t, out, "db")
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	buf := make([]byte, n/2)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(buf)
}

func mustHTTP(t *testing.T, method, url, body string) string {
	t.Helper()
	var got string
	poll(t, method+" "+url, func() error {
		code, data, err := httpDo(method, url, body)
		if err != nil {
			return err
		}
		if code/100 != 2 {
			return fmt.Errorf("status %d: %.200s", code, data)
		}
		got = data
		return nil
	})
	return got
}

// TestE2EClone writes several MB into a running environment, clones it and
// checks that the clone answers the same bytes on its own port, that the
// volumes are identical file by file, and that the two are independent.
func TestE2EClone(t *testing.T) {
	b := e2e(t)
	copier := useStaticCopier(t)
	ctx := context.Background()
	src, srcURL := cloneSource(t, b)
	big := randomHex(t, 6<<20)
	mustHTTP(t, "PUT", srcURL+"/kv/big", big)
	mustHTTP(t, "PUT", srcURL+"/kv/small", "hello")

	dst := src + "-c"
	downOnCleanup(t, b, dst)
	out := mustDenv(t, "clone", src, "-n", dst)
	if !strings.Contains(out, "is the source's; the clone gets an ephemeral port for 8080/tcp") {
		t.Errorf("clone did not say the fixed port was replaced:\n%s", out)
	}
	dstURL := endpoint(t, out, "db")
	if dstURL == srcURL {
		t.Fatalf("clone took the source's endpoint %s", srcURL)
	}
	if got := mustHTTP(t, "GET", dstURL+"/kv/big", ""); got != big {
		t.Fatalf("clone answers %d bytes for big, want the %d written to the source", len(got), len(big))
	}

	// file by file: content, mode, owner, times
	want, err := volumecopy.New(b).VolumeChecksum(ctx, src+"_data", volumecopy.CopyOptions{Copier: copier})
	if err != nil {
		t.Fatal(err)
	}
	got, err := volumecopy.New(b).VolumeChecksum(ctx, dst+"_data", volumecopy.CopyOptions{Copier: copier})
	if err != nil {
		t.Fatal(err)
	}
	if want != got || !strings.Contains(got, "big") {
		t.Errorf("volume listings differ:\nsource:\n%s\nclone:\n%s", want, got)
	}

	// independent: writing to the clone leaves the source as it was
	mustHTTP(t, "PUT", dstURL+"/kv/small", "changed in the clone")
	if got := mustHTTP(t, "GET", srcURL+"/kv/small", ""); got != "hello" {
		t.Errorf("source answers %q after a write to the clone, want hello", got)
	}
	if got := mustHTTP(t, "GET", dstURL+"/kv/small", ""); got != "changed in the clone" {
		t.Errorf("clone answers %q, want its own write", got)
	}
	nets, err := b.Networks(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if n := nets["db"]; len(n) != 1 || n[0] != dst+"_default" {
		t.Errorf("clone's db is on networks %v, want only %s_default", n, dst)
	}
	if e, ok := listed(t, dst, false); !ok || e.ClonedFrom != src || e.Status != "running" {
		t.Errorf("denv envs shows the clone as %+v (listed: %v), want running, cloned from %s", e, ok, src)
	}
	// the table too: its last column is CLONED FROM
	for _, line := range strings.Split(mustDenv(t, "envs"), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && (f[0] == dst && f[len(f)-1] != src || f[0] == src && f[len(f)-1] != "-") {
			t.Errorf("denv envs row %q: want it to end with what it was cloned from (%s for the clone, - for the source)", line, src)
		}
	}
	if e, _ := listed(t, src, false); e.Status != "running" {
		t.Errorf("source is %q after the clone, want running", e.Status)
	}
	// its record keeps the project as loaded, as run's does: its first
	// snapshot or update plans without loading it again
	es, err := newApp().openEnvs()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := es.Get(dst)
	if err != nil {
		t.Fatal(err)
	}
	rec.Loaded = es.LoadedProject(dst)
	if _, cached, err := backend.LoadDeployment(ctx, deployment(rec)); err != nil || !cached {
		t.Errorf("the clone's loaded form does not restore its project (%d bytes; cached %v, %v)", len(rec.Loaded), cached, err)
	}
}

// TestE2ECloneFailuresLeaveNothing: a clone from a missing environment,
// onto a taken name, or failing halfway (after its volumes were made)
// leaves no container, network, volume or record, and the source running.
func TestE2ECloneFailuresLeaveNothing(t *testing.T) {
	b := e2e(t)
	useStaticCopier(t)
	c := dockerClient(t)
	src, srcURL := cloneSource(t, b)
	mustHTTP(t, "PUT", srcURL+"/kv/k", "v")

	missing := src + "-none"
	_, errOut, code := denv(t, "clone", missing, "-n", missing+"-c")
	if code == 0 || !strings.Contains(errOut, missing) {
		t.Errorf("clone of a missing environment: exit %d, stderr %q", code, errOut)
	}
	nothingLeft(t, c, missing+"-c")

	_, errOut, code = denv(t, "clone", src, "-n", src)
	if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("clone onto an existing name: exit %d, stderr %q", code, errOut)
	}

	// Halfway: the copier cannot run (not an executable), after the
	// clone's volumes and containers were created.
	script := filepath.Join(t.TempDir(), "copier")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DENV_COPIER", script)
	// copies on this host run in denv itself: the broken copier is used
	// by a copy in a container
	t.Setenv("DENV_COPY_IN", "container")
	half := src + "-h"
	downOnCleanup(t, b, half)
	_, errOut, code = denv(t, "clone", src, "-n", half)
	if code == 0 || !strings.Contains(errOut, "is not a Linux executable") || !strings.Contains(errOut, "nothing of "+half+" was kept") {
		t.Errorf("clone with a broken copier: exit %d, stderr %q", code, errOut)
	}
	nothingLeft(t, c, half)

	if got := mustHTTP(t, "GET", srcURL+"/kv/k", ""); got != "v" {
		t.Errorf("source answers %q after the failed clones, want v", got)
	}
	if e, _ := listed(t, src, false); e.Status != "running" {
		t.Errorf("source is %q after the failed clones, want running (not paused)", e.Status)
	}
}

// TestE2ECloneStopped clones a stopped environment, --no-start, then
// starts the clone.
func TestE2ECloneStopped(t *testing.T) {
	b := e2e(t)
	useStaticCopier(t)
	src, srcURL := cloneSource(t, b)
	mustHTTP(t, "PUT", srcURL+"/kv/k", "kept")
	mustDenv(t, "stop", src)

	dst := src + "-c"
	downOnCleanup(t, b, dst)
	mustDenv(t, "clone", src, "-n", dst, "--no-start")
	if e, ok := listed(t, dst, true); !ok || e.Status == "running" || e.ClonedFrom != src {
		t.Errorf("clone --no-start is %+v (listed %v), want not running, cloned from %s", e, ok, src)
	}
	out := mustDenv(t, "start", dst)
	if got := mustHTTP(t, "GET", endpoint(t, out, "db")+"/kv/k", ""); got != "kept" {
		t.Errorf("started clone answers %q, want kept", got)
	}
	if e, _ := listed(t, src, true); e.Status == "running" {
		t.Errorf("source is running after the clone, want it still stopped")
	}
}

// TestE2ECloneThenRemove removes a clone with its volumes right after
// cloning: the copier, which the engine removes by itself after the copy,
// must not keep the clone's volume alive.
func TestE2ECloneThenRemove(t *testing.T) {
	b := e2e(t)
	useStaticCopier(t)
	c := dockerClient(t)
	src, srcURL := cloneSource(t, b)
	mustHTTP(t, "PUT", srcURL+"/kv/big", randomHex(t, 32<<20))
	dst := src + "-c"
	downOnCleanup(t, b, dst)
	mustDenv(t, "clone", src, "-n", dst, "--no-start")
	mustDenv(t, "rm", dst, "--volumes")
	if nets, vols := projectResources(t, c, dst); len(nets) > 0 || len(vols) > 0 {
		t.Errorf("rm --volumes right after the clone left networks %v, volumes %v", nets, vols)
	}
	if _, err := c.VolumeInspect(context.Background(), dst+"_data", client.VolumeInspectOptions{}); err == nil {
		t.Errorf("volume %s_data left behind", dst)
	}
}

// freePort returns a TCP port free on this machine now, for a fixed PORT.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// BenchmarkCloneVsCpA measures `denv clone` of an environment whose volume
// holds DENV_BENCH_CLONE_MB MiB (default 1024: 16 files of 1/16 each plus
// 256 small files) against a host `cp -a` of the same tree, in one run. It
// reports clone-s and cp-a-s per operation and their ratio (target <= 1.5).
// The clone includes everything the command does: pausing the source,
// creating the clone's volume, copying, starting its container.
func BenchmarkCloneVsCpA(b *testing.B) {
	be := backendtest.Require(b)
	for _, ref := range []string{"ex/db"} {
		if _, ok, err := be.ImageLabels(context.Background(), ref); err != nil || !ok {
			b.Skipf("image %s is missing (make images): %v", ref, err)
		}
	}
	mib := 1024
	if v := os.Getenv("DENV_BENCH_CLONE_MB"); v != "" {
		if _, err := fmt.Sscan(v, &mib); err != nil {
			b.Fatalf("DENV_BENCH_CLONE_MB=%q: %v", v, err)
		}
	}
	b.Setenv("DENV_HOME", filepath.Join(b.TempDir(), "denv-home"))
	useStaticCopier(b)
	c, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	ctx := context.Background()

	// the tree, on the host
	tree := filepath.Join(b.TempDir(), "tree")
	if err := os.MkdirAll(filepath.Join(tree, "small"), 0o755); err != nil {
		b.Fatal(err)
	}
	block := make([]byte, int64(mib)<<20/16)
	for i := 0; i < 16; i++ {
		if _, err := rand.Read(block); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, fmt.Sprintf("big-%02d", i)), block, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 256; i++ {
		if err := os.WriteFile(filepath.Join(tree, "small", fmt.Sprint(i)), block[:4096], 0o600); err != nil {
			b.Fatal(err)
		}
	}

	// the source environment, its volume filled from the tree through a
	// bind-backed volume
	src := "denvbench-clone-src"
	def := filepath.Join(b.TempDir(), "kv.denv")
	if err := os.WriteFile(def, []byte("IMAGE ex/db VOLUME data:/data\nEXPOSE db\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	backendtest.DownOnCleanup(b, be, src)
	if code := Main([]string{"run", "-n", src, def}, strings.NewReader(""), io.Discard, io.Discard); code != 0 {
		b.Fatal("denv run failed")
	}
	hostVol := src + "-host"
	if _, err := c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: hostVol, Driver: "local",
		DriverOpts: map[string]string{"type": "none", "o": "bind", "device": tree}}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = c.VolumeRemove(context.Background(), hostVol, client.VolumeRemoveOptions{Force: true}) })
	if err := volumecopy.New(be).CopyVolume(ctx, hostVol, src+"_data", volumecopy.CopyOptions{Copier: os.Getenv("DENV_COPIER")}); err != nil {
		b.Fatal(err)
	}
	// (the copier image now exists: it is imported once per denv build)

	// Both copies start with no dirty pages to write back, so that one does
	// not pay for the other's (or the setup's) writes, and, when the
	// benchmark may (root), with a cold page cache: which copy ran first
	// would otherwise decide which one reads from memory.
	syncDisks := func() {
		b.StopTimer()
		if out, err := exec.Command("sync").CombinedOutput(); err != nil {
			b.Fatalf("sync: %v: %s", err, out)
		}
		_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o644)
		b.StartTimer()
	}
	var cloneT, cpT time.Duration
	for i := 0; b.Loop(); i++ {
		dst := fmt.Sprintf("%s-c%d", src, i)
		syncDisks()
		start := time.Now()
		var outb, errb bytes.Buffer
		if code := Main([]string{"clone", src, "-n", dst}, strings.NewReader(""), &outb, &errb); code != 0 {
			b.Fatalf("clone: %s", errb.String())
		}
		cloneT += time.Since(start)
		b.StopTimer()
		b.Logf("clone %d took %.2fs:\n%s", i, time.Since(start).Seconds(), outb.String())
		if err := be.Down(ctx, dst, true); err != nil {
			b.Fatal(err)
		}
		_ = Main([]string{"rm", dst}, strings.NewReader(""), io.Discard, io.Discard)
		copyDir := tree + fmt.Sprint(i)
		b.StartTimer()
		syncDisks()
		start = time.Now()
		if out, err := exec.Command("cp", "-a", tree, copyDir).CombinedOutput(); err != nil {
			b.Fatalf("cp -a: %v: %s", err, out)
		}
		cpT += time.Since(start)
		b.StopTimer()
		if err := os.RemoveAll(copyDir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(cloneT.Seconds()/n, "clone-s/op")
	b.ReportMetric(cpT.Seconds()/n, "cp-a-s/op")
	b.ReportMetric(cloneT.Seconds()/cpT.Seconds(), "clone/cp-a")
}

// TestE2ECloneDynamicBuild: denv built by a plain `go build` with cgo on
// (dynamically linked: the copier image gets its loader and libraries)
// runs an environment, clones it with itself as the copier, and the clone
// answers the bytes written to the source.
func TestE2ECloneDynamicBuild(t *testing.T) {
	b := e2e(t)
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no C compiler: go build would not use cgo")
	}
	exe := filepath.Join(t.TempDir(), "denv")
	build := exec.Command("go", "build", "-o", exe, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	dynamic := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
	_ = f.Close()
	if !dynamic {
		t.Fatalf("%s built with CGO_ENABLED=1 is statically linked", exe)
	}
	t.Setenv("DENV_COPIER", "") // the clone copies with the running denv
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(exe, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("denv %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String()
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	def := filepath.Join(t.TempDir(), "kv.denv")
	if err := os.WriteFile(def, []byte(fmt.Sprintf("IMAGE ex/db VOLUME data:/data PORT %d:8080\nEXPOSE db\n", port)), 0o644); err != nil {
		t.Fatal(err)
	}
	src := backendtest.ProjectName(t)
	downOnCleanup(t, b, src)
	srcURL := endpoint(t, run("run", "-n", src, def), "db")
	data := randomHex(t, 1<<20)
	mustHTTP(t, "PUT", srcURL+"/kv/data", data)

	dst := src + "-c"
	downOnCleanup(t, b, dst)
	out := run("clone", src, "-n", dst)
	// Every db line: when the engine gives the IPv6 binding another
	// ephemeral port than the IPv4 one, denv prints both, and only the
	// IPv4 one answers on 127.0.0.1 (a bug outside the copier).
	var urls []string
	for _, m := range endpointLine.FindAllStringSubmatch(out, -1) {
		if m[1] == "db" {
			urls = append(urls, "http://127.0.0.1:"+m[2])
		}
	}
	if len(urls) == 0 {
		t.Fatalf("no endpoint for db in:\n%s", out)
	}
	poll(t, "GET /kv/data from the clone at "+strings.Join(urls, " or "), func() error {
		var errs []string
		for _, u := range urls {
			code, got, err := httpDo("GET", u+"/kv/data", "")
			switch {
			case err != nil:
				errs = append(errs, err.Error())
			case code != 200:
				errs = append(errs, fmt.Sprintf("%s: status %d", u, code))
			case got != data:
				t.Fatalf("the clone made by a dynamic denv answers %d bytes, want the %d written to the source", len(got), len(data))
			default:
				return nil
			}
		}
		return errors.New(strings.Join(errs, "; "))
	})
}
