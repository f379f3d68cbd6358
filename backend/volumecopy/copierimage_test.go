package volumecopy_test

import (
	"archive/tar"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend/backendtest"
	"github.com/alebellu/denv/backend/volumecopy"
)

// TestCopierContainerIsConfined: the copier container, as it waits for
// its go-ahead, is in the host's network namespace (its own costs 0.38 s,
// see volumecopy.go) but has only the capabilities of a faithful copy,
// no-new-privileges and a read-only root.
func TestCopierContainerIsConfined(t *testing.T) {
	be := backendtest.Require(t)
	b := volumecopy.New(be)
	b.Where = volumecopy.InContainer
	docker := be.API()
	ctx := testContext(t)
	name := backendtest.ProjectName(t)
	src := newVolume(t, docker, name+"-src")
	dst := newVolume(t, docker, name+"-dst")
	c, err := b.StartCopy(ctx, []volumecopy.VolumePair{{Src: src, Dst: dst}}, copierExe(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", "denv.copier=true").Add("volume", src)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("%d copier containers mount %s, want 1", len(list.Items), src)
	}
	res, err := docker.ContainerInspect(ctx, list.Items[0].ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hc := res.Container.HostConfig
	if hc.NetworkMode != "host" {
		t.Errorf("network mode %q, want host", hc.NetworkMode)
	}
	if !slices.Equal(hc.CapDrop, []string{"ALL"}) {
		t.Errorf("dropped capabilities %q, want ALL", hc.CapDrop)
	}
	caps := slices.Sorted(slices.Values(hc.CapAdd))
	if want := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_MKNOD"}; !slices.Equal(caps, want) {
		t.Errorf("added capabilities %q, want %q", caps, want)
	}
	if !slices.Contains(hc.SecurityOpt, "no-new-privileges") {
		t.Errorf("security options %q, want no-new-privileges", hc.SecurityOpt)
	}
	if !hc.ReadonlyRootfs {
		t.Error("the copier's root filesystem is writable")
	}
	if res.Container.State == nil || res.Container.State.Status != container.StateRunning {
		t.Errorf("copier state %+v, want running", res.Container.State)
	}
	// and it still copies with that
	if err := c.Run(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// the engine removes it: wait, so that the volumes can be removed
	w := docker.ContainerWait(ctx, list.Items[0].ID, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
	select {
	case <-w.Result:
	case <-w.Error:
	}
}

// TestTamperedCopierImageIsReplaced: another image tagged as the copier's
// denv/copier:TAG is not run; denv imports its own again, with the record
// of the checked image ID (in the cache directory) or without it.
func TestTamperedCopierImageIsReplaced(t *testing.T) {
	be := backendtest.Require(t)
	b := volumecopy.New(be)
	b.Where = volumecopy.InContainer // the image is what is tested
	docker := be.API()
	ctx := testContext(t)
	exe := copierExe(t)
	echo := backendtest.EchoImage(t, be)
	echoImg, err := docker.ImageInspect(ctx, echo)
	if err != nil {
		t.Fatal(err)
	}
	for _, record := range []bool{true, false} {
		t.Setenv("XDG_CACHE_HOME", t.TempDir())
		ref, err := volumecopy.CopierImage(ctx, b, exe)
		if err != nil {
			t.Fatal(err)
		}
		want, err := docker.ImageInspect(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if !record {
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
		}
		if _, err := docker.ImageTag(ctx, client.ImageTagOptions{Source: echo, Target: ref}); err != nil {
			t.Fatal(err)
		}
		got, err := volumecopy.CopierImage(ctx, b, exe)
		if err != nil {
			t.Fatal(err)
		}
		img, err := docker.ImageInspect(ctx, got)
		if err != nil {
			t.Fatal(err)
		}
		if got != ref || img.ID == echoImg.ID || !slices.Equal(img.RootFS.Layers, want.RootFS.Layers) {
			t.Errorf("with a record %v: after tagging %s as %s, denv uses %s = %s (layers %q), want its own layers %q",
				record, echo, ref, got, img.ID, img.RootFS.Layers, want.RootFS.Layers)
		}
		// and a copy with it works
		name := backendtest.ProjectName(t)
		src := newVolume(t, docker, name+"-src")
		if _, err := b.VolumeChecksum(ctx, src, volumecopy.CopyOptions{Copier: exe}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConfinedCopierKeepsEverything: with only its capabilities, the
// copier still copies what needs them: a device node and a fifo (MKNOD),
// set-user-ID and set-group-ID files of other owners (CHOWN, FOWNER,
// FSETID), an unreadable file and a read-only directory of another user
// (DAC_OVERRIDE), a hard link to another user's file (FOWNER).
func TestConfinedCopierKeepsEverything(t *testing.T) {
	// on this host too: the same copy without confinement
	for _, w := range wheres() {
		t.Run(w.name, func(t *testing.T) {
			f := newFixture(t, w.where)
			b, docker, ctx, image, name := f.b, f.docker, f.ctx, f.image, f.name
			src := newVolume(t, docker, name+"-src")
			dst := newVolume(t, docker, name+"-dst")
			old := time.Date(2003, 4, 5, 6, 7, 8, 0, time.UTC)
			fillVolume(t, docker, image, src, tarOf(t, []tarEntry{
				{tar.Header{Typeflag: tar.TypeChar, Name: "null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: old}, nil},
				{tar.Header{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o640, Uid: 1000, Gid: 1000, ModTime: old}, nil},
				{tar.Header{Typeflag: tar.TypeReg, Name: "suid", Mode: 0o4755, Uid: 1000, Gid: 1000, ModTime: old, Size: 2}, []byte("su")},
				{tar.Header{Typeflag: tar.TypeReg, Name: "sgid", Mode: 0o2755, Uid: 1000, Gid: 2000, ModTime: old, Size: 2}, []byte("sg")},
				{tar.Header{Typeflag: tar.TypeDir, Name: "ro/", Mode: 0o500, Uid: 1000, Gid: 1000, ModTime: old}, nil},
				{tar.Header{Typeflag: tar.TypeReg, Name: "ro/secret", Mode: 0o000, Uid: 1000, Gid: 1000, ModTime: old, Size: 6}, []byte("secret")},
				{tar.Header{Typeflag: tar.TypeLink, Name: "hard", Linkname: "ro/secret", Uid: 1000, Gid: 1000, ModTime: old}, nil},
			}))
			opts := volumecopy.CopyOptions{Copier: copierExe(t)}
			if err := b.CopyVolume(ctx, src, dst, opts); err != nil {
				t.Fatal(err)
			}
			got := sameTree(t, f, opts, src, dst)
			for _, line := range []string{`"null" `, `"fifo" `, `"suid" file 4755 1000:1000`, `"sgid" file 2755 1000:2000`, `"ro" dir 500 1000:1000`, `"ro/secret" file 0 1000:1000`, `"hard" file 0 1000:1000`} {
				if !strings.Contains(got, line) {
					t.Errorf("copy listing lacks %q:\n%s", line, got)
				}
			}
		})
	}
}
