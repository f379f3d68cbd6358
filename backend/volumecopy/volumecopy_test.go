package volumecopy_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend/backendtest"
	"github.com/alebellu/denv/backend/volumecopy"
	"github.com/alebellu/denv/internal/copier"
)

// copierExe builds backend/testdata/copier statically: a copier with the
// same subcommands as the denv binary (the one users run, tested in
// cmd/denv); the test binary itself is dynamically linked and has none.
func copierExe(t testing.TB) string {
	t.Helper()
	return backendtest.StaticBinary(t, "github.com/alebellu/denv/backend/testdata/copier")
}

// newVolume creates a volume removed when the test ends.
func newVolume(t *testing.T, docker client.APIClient, name string) string {
	t.Helper()
	if _, err := docker.VolumeCreate(context.Background(), client.VolumeCreateOptions{Name: name}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = docker.VolumeRemove(context.Background(), name, client.VolumeRemoveOptions{Force: true})
	})
	return name
}

// fillVolume writes the entries of a tar archive into the volume through
// the archive API, with a created (never started) container of image.
func fillVolume(t *testing.T, docker client.APIClient, image, volume string, archive []byte) {
	t.Helper()
	ctx := testContext(t)
	res, err := docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image},
		HostConfig: &container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: volume, Target: "/data"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = docker.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true}) }()
	if _, err := docker.CopyToContainer(ctx, res.ID, client.CopyToContainerOptions{DestinationPath: "/data", Content: bytes.NewReader(archive)}); err != nil {
		t.Fatal(err)
	}
}

// testTree is a tar of every kind of entry a volume may hold, with owners
// other than root and a file larger than the copier's chunk.
func testTree(t *testing.T) []byte {
	t.Helper()
	big := make([]byte, 40<<20+7)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2002, 3, 4, 5, 6, 7, 0, time.UTC)
	return tarOf(t, []tarEntry{
		{tar.Header{Typeflag: tar.TypeDir, Name: "pg/", Mode: 0o700, Uid: 999, Gid: 999, ModTime: old}, nil},
		{tar.Header{Typeflag: tar.TypeDir, Name: "pg/empty/", Mode: 0o750, Uid: 999, Gid: 998, ModTime: old}, nil},
		{tar.Header{Typeflag: tar.TypeReg, Name: "pg/big.bin", Mode: 0o600, Uid: 999, Gid: 999, ModTime: old, Size: int64(len(big))}, big},
		{tar.Header{Typeflag: tar.TypeReg, Name: "exec", Mode: 0o755, Uid: 0, Gid: 0, ModTime: old, Size: 3}, []byte("abc")},
		{tar.Header{Typeflag: tar.TypeReg, Name: "empty-file", Mode: 0o444, Uid: 1234, Gid: 5678, ModTime: old}, nil},
		{tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "pg/big.bin", Uid: 1234, Gid: 5678, ModTime: old}, nil},
		{tar.Header{Typeflag: tar.TypeSymlink, Name: "dangling", Linkname: "/nowhere", ModTime: old}, nil},
		{tar.Header{Typeflag: tar.TypeLink, Name: "hard", Linkname: "exec", ModTime: old}, nil},
	})
}

// tarEntry is one entry of a test archive.
type tarEntry struct {
	h    tar.Header
	body []byte
}

// tarOf writes entries as a tar archive.
func tarOf(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(&e.h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCopyVolumeIsFaithful(t *testing.T) {
	for _, w := range wheres() {
		t.Run(w.name, func(t *testing.T) {
			f := newFixture(t, w.where)
			b, docker, ctx, image, name := f.b, f.docker, f.ctx, f.image, f.name
			src := newVolume(t, docker, name+"-src")
			dst := newVolume(t, docker, name+"-dst")
			fillVolume(t, docker, image, src, testTree(t))
			// what the engine puts in a new volume from its image: replaced
			fillVolume(t, docker, image, dst, staleTree(t))
			opts := volumecopy.CopyOptions{Copier: copierExe(t)}

			var calls int
			var last, total int64
			opts.Progress = func(copied, tot int64) { calls++; last, total = copied, tot }
			if err := b.CopyVolume(ctx, src, dst, opts); err != nil {
				t.Fatal(err)
			}
			wantTotal := int64(40<<20 + 7 + 3)
			if total != wantTotal || last != wantTotal {
				t.Errorf("progress ended at %d of %d after %d calls, want %d of %d", last, total, calls, wantTotal, wantTotal)
			}

			got := sameTree(t, f, opts, src, dst)
			for _, line := range []string{`"pg/empty" dir 750 999:998`, `"exec" file 755 0:0`, `"hard" file 755 0:0`, `"empty-file" file 444 1234:5678`, `"link" symlink 777 1234:5678`, `-> "/nowhere"`} {
				if !strings.Contains(got, line) {
					t.Errorf("copy listing lacks %q:\n%s", line, got)
				}
			}
		})
	}
}

// staleTree is a tar of files a destination volume may hold before a copy.
func staleTree(t *testing.T) []byte {
	t.Helper()
	stale := []byte("stale")
	return tarOf(t, []tarEntry{
		{tar.Header{Typeflag: tar.TypeDir, Name: "ro/", Mode: 0o500}, nil},
		{tar.Header{Typeflag: tar.TypeReg, Name: "ro/stale", Mode: 0o644, Size: 5}, stale},
		{tar.Header{Typeflag: tar.TypeReg, Name: "exec", Mode: 0o600, Size: 5}, stale},
	})
}

// TestStartCopyTwoVolumes copies two volumes with one copier container
// started ahead, and reports progress per volume.
func TestStartCopyTwoVolumes(t *testing.T) {
	for _, w := range wheres() {
		t.Run(w.name, func(t *testing.T) {
			f := newFixture(t, w.where)
			b, docker, ctx, image, name := f.b, f.docker, f.ctx, f.image, f.name
			src1, dst1 := newVolume(t, docker, name+"-src1"), newVolume(t, docker, name+"-dst1")
			src2, dst2 := newVolume(t, docker, name+"-src2"), newVolume(t, docker, name+"-dst2")
			fillVolume(t, docker, image, src1, testTree(t))
			fillVolume(t, docker, image, src2, staleTree(t))
			opts := volumecopy.CopyOptions{Copier: copierExe(t)}

			c, err := b.StartCopy(ctx, []volumecopy.VolumePair{{Src: src1, Dst: dst1}, {Src: src2, Dst: dst2}}, opts.Copier)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// as clone does: the copier, which mounts the sources too, is not
			// paused (the copy would never end)
			resume, err := b.PauseVolumeUsers(ctx, []string{src1, src2})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := resume(); err != nil {
					t.Error(err)
				}
			}()
			last := map[int]int64{}
			if err := c.Run(ctx, func(i int, copied, total int64) {
				if copied > total {
					t.Errorf("volume %d: %d copied of %d", i, copied, total)
				}
				last[i] = copied
			}); err != nil {
				t.Fatal(err)
			}
			if want := map[int]int64{0: 40<<20 + 7 + 3, 1: 10}; last[0] != want[0] || last[1] != want[1] {
				t.Errorf("progress ended at %v, want %v", last, want)
			}
			for _, p := range [][2]string{{src1, dst1}, {src2, dst2}} {
				sameTree(t, f, opts, p[0], p[1])
			}
		})
	}
}

func TestCopyVolumeMissingSource(t *testing.T) {
	be := backendtest.Require(t)
	b := volumecopy.New(be)
	docker := be.API()
	name := backendtest.ProjectName(t)
	dst := newVolume(t, docker, name+"-dst")
	err := b.CopyVolume(testContext(t), name+"-nope", dst, volumecopy.CopyOptions{Copier: copierExe(t)})
	if err == nil || !strings.Contains(err.Error(), name+"-nope") {
		t.Fatalf("copy from a missing volume: err = %v, want an error naming it", err)
	}
}

func TestPauseVolumeUsers(t *testing.T) {
	f := newFixture(t, volumecopy.Anywhere)
	b, docker, ctx, name := f.b, f.docker, f.ctx, f.name
	vol := newVolume(t, docker, name+"-data")
	running, already := f.startUser(t, "-a", vol), f.startUser(t, "-b", vol)
	if _, err := docker.ContainerPause(ctx, already, client.ContainerPauseOptions{}); err != nil {
		t.Fatal(err)
	}
	state := func(id string) string {
		res, err := docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return string(res.Container.State.Status)
	}

	cctx, cancel := context.WithCancel(ctx)
	resume, err := b.PauseVolumeUsers(cctx, []string{vol})
	if err != nil {
		t.Fatal(err)
	}
	if s := state(running); s != "paused" {
		t.Errorf("while paused: container a is %s, want paused", s)
	}
	cancel() // like Ctrl-C during the copy: resume must still work
	if err := resume(); err != nil {
		t.Fatal(err)
	}
	if s := state(running); s != "running" {
		t.Errorf("after resume: container a is %s, want running", s)
	}
	if s := state(already); s != "paused" {
		t.Errorf("after resume: container b (paused before) is %s, want still paused", s)
	}
}

// TestCopyVolumeInterrupted cancels the copy as soon as it starts (like
// Ctrl-C): the error says so and no helper container is left.
func TestCopyVolumeInterrupted(t *testing.T) {
	for _, w := range wheres() {
		t.Run(w.name, func(t *testing.T) {
			be := backendtest.Require(t)
			b := volumecopy.New(be)
			b.Where = w.where
			docker := be.API()
			image := backendtest.EchoImage(t, be)
			name := backendtest.ProjectName(t)
			src := newVolume(t, docker, name+"-src")
			dst := newVolume(t, docker, name+"-dst")
			fillVolume(t, docker, image, src, testTree(t))
			copier := copierExe(t)
			if err := b.PrepareCopier(testContext(t), copier); err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			err := b.CopyVolume(ctx, src, dst, volumecopy.CopyOptions{Copier: copier, Progress: func(copied, total int64) {
				if copied == 0 {
					cancel()
				}
			}})
			if err == nil || !strings.Contains(err.Error(), "context canceled") {
				t.Fatalf("interrupted copy: err = %v, want a cancellation error", err)
			}
			res, err := docker.ContainerList(context.Background(), client.ContainerListOptions{All: true,
				Filters: make(client.Filters).Add("label", "denv.copier=true").Add("volume", dst)})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Items) > 0 {
				t.Errorf("%d copier containers left after the interruption", len(res.Items))
			}
		})
	}
}

// asideRemoved waits until no directory of a replacement is left beside
// the directory of volume (on this host), and fails after a minute.
func asideRemoved(t *testing.T, docker client.APIClient, volume string) {
	t.Helper()
	res, err := docker.VolumeInspect(context.Background(), volume, client.VolumeInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pattern := filepath.Join(filepath.Dir(res.Volume.Mountpoint), copier.AsidePrefix+"*")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		left, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left beside volume %s: %v", volume, left)
		}
	}
}

// fixture is what a test of copies on the engine starts with.
type fixture struct {
	b      *volumecopy.Copier
	docker client.APIClient
	ctx    context.Context
	image  string // the test image, to fill volumes with
	name   string // unique to the test, to name volumes with
}

// newFixture needs the engine (backendtest.Require) and makes a Copier
// that copies where w allows.
func newFixture(t *testing.T, w volumecopy.Where) fixture {
	t.Helper()
	be := backendtest.Require(t)
	b := volumecopy.New(be)
	b.Where = w
	return fixture{b: b, docker: be.API(), ctx: testContext(t), image: backendtest.EchoImage(t, be), name: backendtest.ProjectName(t)}
}

// sameTree fails the test unless the checksum listings of volumes src
// and dst are equal; it returns dst's.
func sameTree(t *testing.T, f fixture, opts volumecopy.CopyOptions, src, dst string) string {
	t.Helper()
	want, err := f.b.VolumeChecksum(f.ctx, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.b.VolumeChecksum(f.ctx, dst, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want != got {
		t.Errorf("%s: checksum listings differ:\nsource %s:\n%s\ncopy:\n%s", dst, src, want, got)
	}
	return got
}

// startUser starts a container of the test image, named the test's name
// with suffix, that mounts volume at /data; it is removed when the test
// ends.
func (f fixture) startUser(t *testing.T, suffix, volume string) string {
	t.Helper()
	res, err := f.docker.ContainerCreate(f.ctx, client.ContainerCreateOptions{
		Name:       f.name + suffix,
		Config:     &container.Config{Image: f.image},
		HostConfig: &container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: volume, Target: "/data"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = f.docker.ContainerRemove(context.Background(), res.ID, client.ContainerRemoveOptions{Force: true})
	})
	if _, err := f.docker.ContainerStart(f.ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	return res.ID
}

// where is a place copies may run, for the tests that run in each.
type where struct {
	name  string
	where volumecopy.Where
}

// wheres are the places a copy may run: a process on this host (when the
// test runs as root there, as CI does; else a container too) and a
// container.
func wheres() []where {
	return []where{{"host", volumecopy.Anywhere}, {"container", volumecopy.InContainer}}
}

// onHost says whether a copy allowed to run anywhere runs on this host
// here: as root, the volumes' directories are this host's.
func (w where) onHost() bool { return w.where == volumecopy.Anywhere && os.Geteuid() == 0 }

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestStartReplace replaces the contents of two volumes (owners, modes,
// links kept, nothing of the former contents left), then interrupts a
// second replacement once it copies (like Ctrl-C): the copier puts both
// volumes back, Run says so, and their listings are those before it.
func TestStartReplace(t *testing.T) {
	for _, w := range wheres() {
		t.Run(w.name, func(t *testing.T) {
			f := newFixture(t, w.where)
			b, docker, ctx, image, name := f.b, f.docker, f.ctx, f.image, f.name
			src1, dst1 := newVolume(t, docker, name+"-src1"), newVolume(t, docker, name+"-dst1")
			src2, dst2 := newVolume(t, docker, name+"-src2"), newVolume(t, docker, name+"-dst2")
			fillVolume(t, docker, image, src1, testTree(t))
			fillVolume(t, docker, image, src2, staleTree(t))
			fillVolume(t, docker, image, dst1, staleTree(t))
			fillVolume(t, docker, image, dst2, testTree(t))
			opts := volumecopy.CopyOptions{Copier: copierExe(t)}
			sum := func(v string) string {
				t.Helper()
				s, err := b.VolumeChecksum(ctx, v, opts)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			pairs := []volumecopy.VolumePair{{Src: src1, Dst: dst1}, {Src: src2, Dst: dst2}}

			c, err := b.StartReplace(ctx, pairs, opts.Copier)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Run(ctx, nil)
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pairs {
				if want, got := sum(p.Src), sum(p.Dst); want != got {
					t.Errorf("%s: checksum listings differ:\nsource:\n%s\nreplaced:\n%s", p.Dst, want, got)
				}
				if w.onHost() {
					// the former entries, moved beside the volume's
					// directory, are removed after Run returned
					asideRemoved(t, docker, p.Dst)
				}
			}

			// the other way, interrupted: dst1 and dst2 stay as they are now
			before1, before2 := sum(dst1), sum(dst2)
			c, err = b.StartReplace(ctx, []volumecopy.VolumePair{{Src: src2, Dst: dst1}, {Src: src1, Dst: dst2}}, opts.Copier)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			err = c.Run(rctx, func(i int, copied, total int64) {
				if copied == 0 { // 40 MiB still to copy: it cannot be complete
					cancel()
				}
			})
			if err == nil || !strings.Contains(err.Error(), "context canceled") || !c.Undone() {
				t.Fatalf("interrupted replacement: err = %v, undone %v; want a cancellation, undone", err, c.Undone())
			}
			if got := sum(dst1); got != before1 {
				t.Errorf("%s not put back:\nbefore:\n%s\nafter:\n%s", dst1, before1, got)
			}
			if got := sum(dst2); got != before2 {
				t.Errorf("%s not put back:\nbefore:\n%s\nafter:\n%s", dst2, before2, got)
			}
		})
	}
}
