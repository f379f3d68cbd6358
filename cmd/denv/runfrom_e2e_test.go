package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/volumecopy"
)

// writeTree writes, through the running container of service db of
// environment id, a tree of every kind of entry into its volume at
// /data/tree: owners other than root, a private directory, a symlink, a
// hard link, an old modification time.
func writeTree(t *testing.T, b *backend.Backend, c *client.Client, id string) {
	t.Helper()
	ctx := context.Background()
	cs, err := b.Ps(ctx, id)
	if err != nil || len(cs) != 1 {
		t.Fatalf("containers of %s: %v %v", id, cs, err)
	}
	old := time.Date(2003, 4, 5, 6, 7, 8, 0, time.UTC)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct {
		h    tar.Header
		body string
	}{
		{tar.Header{Typeflag: tar.TypeDir, Name: "tree/", Mode: 0o700, Uid: 999, Gid: 999, ModTime: old}, ""},
		{tar.Header{Typeflag: tar.TypeDir, Name: "tree/empty/", Mode: 0o750, Uid: 999, Gid: 998, ModTime: old}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: "tree/secret", Mode: 0o600, Uid: 1234, Gid: 5678, ModTime: old, Size: 6}, "secret"},
		{tar.Header{Typeflag: tar.TypeSymlink, Name: "tree/link", Linkname: "secret", Uid: 1234, Gid: 5678, ModTime: old}, ""},
		{tar.Header{Typeflag: tar.TypeLink, Name: "tree/hard", Linkname: "tree/secret", Uid: 1234, Gid: 5678, ModTime: old}, ""},
	} {
		if err := tw.WriteHeader(&e.h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CopyToContainer(ctx, cs[0].ID, client.CopyToContainerOptions{DestinationPath: "/data", Content: &buf}); err != nil {
		t.Fatal(err)
	}
}

// nothingLeft fails the test if the engine or the records hold anything
// of environment id: container, network, volume, record.
func nothingLeft(t *testing.T, c *client.Client, id string) {
	t.Helper()
	cs, err := c.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", "com.docker.compose.project="+id)})
	if err != nil {
		t.Fatal(err)
	}
	nets, vols := projectResources(t, c, id)
	if len(cs.Items) > 0 || len(nets) > 0 || len(vols) > 0 {
		t.Errorf("%s left %d containers, networks %v, volumes %v", id, len(cs.Items), nets, vols)
	}
	if _, err := c.VolumeInspect(context.Background(), id+"_data", client.VolumeInspectOptions{}); err == nil {
		t.Errorf("volume %s_data left behind", id)
	}
	if _, ok := listed(t, id, true); ok {
		t.Errorf("record %s left behind", id)
	}
}

// TestE2ERunFromImportedSnapshot: data written into an environment (through
// its service, and a tree of every kind of entry), snapshotted, exported,
// the snapshot removed, the file imported, and a new environment run
// --from the imported snapshot (with --set) answers the same bytes through
// its own service; its volume's checksum listing (contents, modes, owners,
// links, times) is the snapshotted one; envs shows what it was seeded from.
func TestE2ERunFromImportedSnapshot(t *testing.T) {
	b := e2e(t)
	copier := useStaticCopier(t)
	c := dockerClient(t)
	ctx := context.Background()
	vc := volumecopy.New(b)
	src, url := cloneSource(t, b)
	snap := src + "-s"
	removeSnapshotsOnCleanup(t, c, snap)

	big := randomHex(t, 4<<20)
	mustHTTP(t, "PUT", url+"/kv/big", big)
	mustHTTP(t, "PUT", url+"/kv/small", "hello")
	writeTree(t, b, c, src)
	mustDenv(t, "snapshot", src, "-n", snap)
	want, err := vc.VolumeChecksum(ctx, src+"_data", volumecopy.CopyOptions{Copier: copier})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`"tree" dir 700 999:999`, `"tree/empty" dir 750 999:998`, `"tree/secret" file 600 1234:5678`, `"tree/hard" file 600 1234:5678`, `"tree/link" symlink 777 1234:5678`} {
		if !strings.Contains(want, line) {
			t.Fatalf("the source's listing lacks %q (the tree was not written):\n%s", line, want)
		}
	}
	// written after the snapshot: not in the new environment
	mustHTTP(t, "PUT", url+"/kv/small", "changed")

	file := filepath.Join(t.TempDir(), "snap.denvsnap")
	mustDenv(t, "snapshot", "export", snap, "-o", file)
	mustDenv(t, "snapshot", "rm", snap)
	if vs := snapshotVolumes(t, c, snap); len(vs) > 0 {
		t.Fatalf("snapshot rm left volumes %v", vs)
	}
	if out := mustDenv(t, "snapshot", "import", file); strings.TrimSpace(out) != snap {
		t.Fatalf("import printed %q, want the name in the file, %s", out, snap)
	}

	dst := src + "-n"
	downOnCleanup(t, b, dst)
	def := writeDef(t, "PARAM note = \"none\"\nIMAGE ex/db\n  SET NOTE=${note}\n  VOLUME data:/data\n  PORT 8080\nEXPOSE db\n")
	out, errOut, code := denv(t, "run", def, "-n", dst, "--from", snap, "--set", "note=seeded")
	if code != 0 {
		t.Fatalf("run --from: exit %d\n%s", code, errOut)
	}
	// the copy's progress on stderr: stdout is the endpoints, as for run
	if !strings.Contains(errOut, "seeding "+dst+" from snapshot "+snap) || !strings.Contains(errOut, "volume data: copied") {
		t.Errorf("run --from did not say it seeded the volume:\n%s", errOut)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "db  http://127.0.0.1:") {
		t.Errorf("run --from printed %q on stdout, want only the endpoint", out)
	}
	dstURL := endpoint(t, out, "db")
	if got := mustHTTP(t, "GET", dstURL+"/kv/big", ""); got != big {
		t.Errorf("the seeded environment answers %d bytes for big, want the %d snapshotted", len(got), len(big))
	}
	if got := mustHTTP(t, "GET", dstURL+"/kv/small", ""); got != "hello" {
		t.Errorf("the seeded environment answers %q for small, want hello (the snapshotted value)", got)
	}
	got, err := vc.VolumeChecksum(ctx, dst+"_data", volumecopy.CopyOptions{Copier: copier})
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("listing of the seeded volume differs:\nsnapshotted:\n%s\nseeded:\n%s", want, got)
	}
	if e, ok := listed(t, dst, false); !ok || e.SeededFrom != snap || e.Status != "running" || e.Params["note"] != "seeded" {
		t.Errorf("denv envs shows %+v (listed %v), want running, seeded from %s, note=seeded", e, ok, snap)
	}
	// the seeded environment is an ordinary one: its data survives a
	// stop and start, and rm --volumes leaves the snapshot
	mustDenv(t, "stop", dst)
	out = mustDenv(t, "start", dst)
	if got := mustHTTP(t, "GET", endpoint(t, out, "db")+"/kv/small", ""); got != "hello" {
		t.Errorf("after stop and start the seeded environment answers %q, want hello", got)
	}
	mustDenv(t, "rm", "--force", "--volumes", dst)
	if vs := snapshotVolumes(t, c, snap); len(vs) != 2 {
		t.Errorf("after rm --volumes of %s the snapshot has volumes %v, want its data and head volumes", dst, vs)
	}
}

// TestE2ERunFromFailuresLeaveNothing: run --from a missing snapshot, a
// snapshot whose volumes are not the definition's (refused naming both
// sides), or failing halfway (the copier broken, after the volumes and
// containers were created) leaves no container, network, volume or
// record; with --keep-on-failure what was created is kept, unrecorded.
func TestE2ERunFromFailuresLeaveNothing(t *testing.T) {
	b := e2e(t)
	useStaticCopier(t)
	c := dockerClient(t)
	src, url, snap := snapshottedSource(t, b, c)
	oneError := regexp.MustCompile(`(?m)^denv: `)

	missing := src + "-m"
	downOnCleanup(t, b, missing)
	def := writeDef(t, "IMAGE ex/db VOLUME data:/data PORT 8080\nEXPOSE db\n")
	_, errOut, code := denv(t, "run", def, "-n", missing, "--from", snap+"-none")
	if code == 0 || !strings.Contains(errOut, `no snapshot named "`+snap+`-none"`) {
		t.Errorf("run --from a missing snapshot: exit %d, stderr %q", code, errOut)
	}
	nothingLeft(t, c, missing)

	other := src + "-o"
	downOnCleanup(t, b, other)
	otherDef := writeDef(t, "IMAGE ex/db VOLUME store:/data PORT 8080\nEXPOSE db\n")
	_, errOut, code = denv(t, "run", otherDef, "-n", other, "--from", snap)
	wantMsg := "denv: cannot run " + otherDef + " from snapshot " + snap + ": " + otherDef + " has volumes store that the snapshot lacks; the snapshot has volumes data that " + otherDef + " lacks\n"
	if code == 0 || errOut != wantMsg {
		t.Errorf("run --from a mismatched snapshot: exit %d, stderr %q, want %q", code, errOut, wantMsg)
	}
	nothingLeft(t, c, other)

	// halfway: the copier cannot run (not an executable)
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
	_, errOut, code = denv(t, "run", def, "-n", half, "--from", snap)
	if code == 0 || !strings.Contains(errOut, "is not a Linux executable") || !strings.Contains(errOut, "nothing of "+half+" was kept") || len(oneError.FindAllString(errOut, -1)) != 1 {
		t.Errorf("run --from with a broken copier: exit %d, stderr %q", code, errOut)
	}
	nothingLeft(t, c, half)

	_, errOut, code = denv(t, "run", def, "-n", half, "--from", snap, "--keep-on-failure")
	if code == 0 || !strings.Contains(errOut, "kept what it had created (--keep-on-failure): 'denv rm --force "+half+"' removes it") {
		t.Errorf("run --from --keep-on-failure with a broken copier: exit %d, stderr %q", code, errOut)
	}
	if cs, err := b.Ps(context.Background(), half); err != nil || len(cs) != 1 || cs[0].State != "created" {
		t.Errorf("--keep-on-failure kept containers %+v (%v), want the created db", cs, err)
	}
	if _, err := c.VolumeInspect(context.Background(), half+"_data", client.VolumeInspectOptions{}); err != nil {
		t.Errorf("--keep-on-failure did not keep %s_data: %v", half, err)
	}
	// unrecorded, but the name is held: listed as incomplete, and
	// rm --force removes what was kept
	if e, ok := listed(t, half, true); !ok || e.Status != "incomplete" {
		t.Errorf("--keep-on-failure: envs --all lists %s as %+v (listed %v), want incomplete", half, e, ok)
	}
	mustDenv(t, "rm", "--force", "--volumes", half)
	if cs, err := b.Ps(context.Background(), half); err != nil && !errors.Is(err, backend.ErrNotFound) || len(cs) != 0 {
		t.Errorf("after rm --force --volumes of what --keep-on-failure kept: containers %+v (%v)", cs, err)
	}
	if _, err := c.VolumeInspect(context.Background(), half+"_data", client.VolumeInspectOptions{}); err == nil {
		t.Errorf("after rm --force --volumes %s_data is still there", half)
	}

	if got := mustHTTP(t, "GET", url+"/kv/small", ""); got != "hello" {
		t.Errorf("source answers %q after the failed runs, want hello", got)
	}
	if vs := snapshotVolumes(t, c, snap); len(vs) != 2 {
		t.Errorf("after the failed runs the snapshot has volumes %v, want its data and head volumes", vs)
	}
}
