package backend_test

import (
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/backendtest"
)

// TestCopierContainerIsConfined: the copier container, as it waits for
// its go-ahead, has no network, only the capabilities of a faithful copy,
// no-new-privileges and a read-only root.
func TestCopierContainerIsConfined(t *testing.T) {
	b := backendtest.Require(t)
	docker := backend.APIClient(b)
	ctx := testContext(t)
	name := backendtest.ProjectName(t)
	src := newVolume(t, docker, name+"-src")
	dst := newVolume(t, docker, name+"-dst")
	c, err := b.StartCopy(ctx, []backend.VolumePair{{Src: src, Dst: dst}}, copierExe(t))
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
	if hc.NetworkMode != "none" {
		t.Errorf("network mode %q, want none", hc.NetworkMode)
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
}

// TestTamperedCopierImageIsReplaced: another image tagged as the copier's
// denv/copier:TAG is not run; denv imports its own again, with the record
// of the checked image ID (in the cache directory) or without it.
func TestTamperedCopierImageIsReplaced(t *testing.T) {
	b := backendtest.Require(t)
	docker := backend.APIClient(b)
	ctx := testContext(t)
	exe := copierExe(t)
	echo := backendtest.EchoImage(t, b)
	echoImg, err := docker.ImageInspect(ctx, echo)
	if err != nil {
		t.Fatal(err)
	}
	for _, record := range []bool{true, false} {
		t.Setenv("XDG_CACHE_HOME", t.TempDir())
		ref, err := backend.CopierImage(ctx, b, exe)
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
		got, err := backend.CopierImage(ctx, b, exe)
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
		if _, err := b.VolumeChecksum(ctx, src, backend.CopyOptions{Copier: exe}); err != nil {
			t.Fatal(err)
		}
	}
}
