package volumecopy_test

import (
	"context"
	"os"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend/backendtest"
	"github.com/alebellu/denv/backend/volumecopy"
)

// requireRoot skips a test of the copies on this host, which run only
// for root (CI runs as root).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("copies run on this host only as root")
	}
}

// TestHostCopyWaitsForIdleVolumes: a copy started on this host while a
// container that mounts its source runs (as clone and snapshot start it,
// before pausing) runs in a container instead if that container still
// runs when the copy is told to start: root on the host never walks a
// tree that a running process can change. Paused, it stays on the host.
func TestHostCopyWaitsForIdleVolumes(t *testing.T) {
	requireRoot(t)
	f := newFixture(t, volumecopy.Anywhere)
	b, docker, ctx, image, name := f.b, f.docker, f.ctx, f.image, f.name
	src := newVolume(t, docker, name+"-src")
	fillVolume(t, docker, image, src, testTree(t))
	f.startUser(t, "-user", src)
	opts := volumecopy.CopyOptions{Copier: copierExe(t)}
	want, err := b.VolumeChecksum(ctx, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	copyOnce := func(dst string, pause bool) bool {
		t.Helper()
		c, err := b.StartCopy(ctx, []volumecopy.VolumePair{{Src: src, Dst: dst}}, opts.Copier)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !c.OnHost() {
			t.Fatal("a copy of plain local volumes, started as root, is not on this host")
		}
		if pause {
			resume, err := b.PauseVolumeUsers(ctx, []string{src})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := resume(); err != nil {
					t.Error(err)
				}
			}()
		}
		if err := c.Run(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := b.VolumeChecksum(ctx, dst, opts); err != nil || got != want {
			t.Fatalf("copy differs (%v):\nsource:\n%s\ncopy:\n%s", err, want, got)
		}
		return c.OnHost()
	}
	if copyOnce(newVolume(t, docker, name+"-dst1"), false) {
		t.Error("the copy ran on this host while a container using its source ran")
	}
	if !copyOnce(newVolume(t, docker, name+"-dst2"), true) {
		t.Error("the copy did not run on this host with its source's user paused")
	}
}

// TestHostCopyOnlyOfPlainLocalVolumes: a volume with driver options (here
// a tmpfs) is only mounted while a container uses it, so its directory on
// this host is not its contents: its copy runs in a container.
func TestHostCopyOnlyOfPlainLocalVolumes(t *testing.T) {
	requireRoot(t)
	be := backendtest.Require(t)
	b := volumecopy.New(be)
	docker := be.API()
	ctx := testContext(t)
	name := backendtest.ProjectName(t)
	src := name + "-tmpfs"
	if _, err := docker.VolumeCreate(ctx, client.VolumeCreateOptions{Name: src, Driver: "local",
		DriverOpts: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = docker.VolumeRemove(context.Background(), src, client.VolumeRemoveOptions{Force: true})
	})
	dst := newVolume(t, docker, name+"-dst")
	c, err := b.StartCopy(ctx, []volumecopy.VolumePair{{Src: src, Dst: dst}}, copierExe(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.OnHost() {
		t.Error("the copy of a tmpfs volume runs on this host")
	}
	if err := c.Run(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// TestHostReaders: a checksum (as an export) of volumes no running
// container uses runs on this host, starting no copier container, and
// gives the listing the container gives.
func TestHostReaders(t *testing.T) {
	requireRoot(t)
	be := backendtest.Require(t)
	docker := be.API()
	ctx := testContext(t)
	image := backendtest.EchoImage(t, be)
	name := backendtest.ProjectName(t)
	src := newVolume(t, docker, name+"-src")
	fillVolume(t, docker, image, src, testTree(t))
	opts := volumecopy.CopyOptions{Copier: copierExe(t)}
	ref, err := volumecopy.CopierImage(ctx, volumecopy.New(be), opts.Copier)
	if err != nil {
		t.Fatal(err)
	}
	listings := map[volumecopy.Where]string{}
	for _, w := range wheres() {
		b := volumecopy.New(be)
		b.Where = w.where
		// only this package's tests run this copier's image
		ectx, cancel := context.WithCancel(ctx)
		evs := docker.Events(ectx, client.EventsListOptions{Filters: make(client.Filters).
			Add("type", "container").Add("event", "create").Add("image", ref)})
		listings[w.where], err = b.VolumeChecksum(ctx, src, opts)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		// an event of the checksum has arrived by the time a marker's has
		marker, err := docker.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: ref}})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		_, _ = docker.ContainerRemove(ctx, marker.ID, client.ContainerRemoveOptions{Force: true})
		created := 0
	events:
		for {
			select {
			case m := <-evs.Messages:
				if m.Actor.ID == marker.ID {
					break events
				}
				created++
			case err := <-evs.Err:
				cancel()
				t.Fatal(err)
			}
		}
		cancel()
		if onHost := created == 0; onHost != w.onHost() {
			t.Errorf("%s: %d copier containers created, want them only in a container", w.name, created)
		}
	}
	if listings[volumecopy.Anywhere] != listings[volumecopy.InContainer] {
		t.Errorf("listings differ:\non this host:\n%s\nin a container:\n%s", listings[volumecopy.Anywhere], listings[volumecopy.InContainer])
	}
}
