package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/volumecopy"
)

// snapshotVolumes lists the volumes of snapshot name in the engine.
func snapshotVolumes(t *testing.T, c *client.Client, name string) []string {
	t.Helper()
	res, err := c.VolumeList(context.Background(), client.VolumeListOptions{
		Filters: make(client.Filters).Add("label", volumecopy.SnapshotLabel+"="+name)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range res.Items {
		names = append(names, v.Name)
	}
	return names
}

// removeSnapshotsOnCleanup removes the volumes of the snapshots when the
// test ends, whatever it did.
func removeSnapshotsOnCleanup(t *testing.T, c *client.Client, names ...string) {
	t.Cleanup(func() {
		for _, n := range names {
			for _, v := range snapshotVolumes(t, c, n) {
				_, _ = c.VolumeRemove(context.Background(), v, client.VolumeRemoveOptions{Force: true})
			}
		}
	})
}

// TestE2ESnapshotRestoreExportImport: a snapshot restores the bytes it
// took (checksum listings equal), survives export, rm and import into a
// new environment, a corrupted export is refused with nothing imported,
// and rm --volumes of an environment keeps its snapshots; with the copier
// on this host and in a container.
func TestE2ESnapshotRestoreExportImport(t *testing.T) {
	// auto: as root (CI), the copies and the export run on this host;
	// container: every copy in the copier container, as for other users
	for _, in := range []string{"auto", "container"} {
		t.Run(in, func(t *testing.T) {
			t.Setenv("DENV_COPY_IN", in)
			b := e2e(t)
			copier := useStaticCopier(t)
			c := dockerClient(t)
			ctx := context.Background()
			vc := volumecopy.New(b)
			src, url := cloneSource(t, b)
			snap, snap2, bad := src+"-s", src+"-s2", src+"-bad"
			removeSnapshotsOnCleanup(t, c, snap, snap2, bad)

			big := randomHex(t, 4<<20)
			mustHTTP(t, "PUT", url+"/kv/big", big)
			mustHTTP(t, "PUT", url+"/kv/small", "hello")
			out := mustDenv(t, "snapshot", src, "-n", snap)
			if lines := strings.Split(strings.TrimSpace(out), "\n"); lines[len(lines)-1] != snap {
				t.Fatalf("snapshot printed %q, want its name %s last", out, snap)
			}
			want, err := vc.VolumeChecksum(ctx, src+"_data", volumecopy.CopyOptions{Copier: copier})
			if err != nil {
				t.Fatal(err)
			}

			mustHTTP(t, "PUT", url+"/kv/small", "changed")
			mustHTTP(t, "PUT", url+"/kv/extra", "new")
			mustDenv(t, "restore", src, snap)
			poll(t, "the restored source answers", func() error { _, _, err := httpDo("GET", url+"/kv/small", ""); return err })
			if got := mustHTTP(t, "GET", url+"/kv/small", ""); got != "hello" {
				t.Errorf("after restore small is %q, want hello", got)
			}
			if got := mustHTTP(t, "GET", url+"/kv/big", ""); got != big {
				t.Errorf("after restore big has %d bytes, want the %d snapshotted", len(got), len(big))
			}
			if code, _, _ := httpDo("GET", url+"/kv/extra", ""); code != 404 {
				t.Errorf("after restore extra answers %d, want 404 (written after the snapshot)", code)
			}
			got, err := vc.VolumeChecksum(ctx, src+"_data", volumecopy.CopyOptions{Copier: copier})
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("listing after restore differs:\nsnapshotted:\n%s\nrestored:\n%s", want, got)
			}
			var list []snapshotInfo
			if err := json.Unmarshal([]byte(mustDenv(t, "snapshots", src, "--format", "json")), &list); err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || list[0].Name != snap || list[0].Environment != src || list[0].Volumes["data"] < int64(len(big)+5) {
				t.Errorf("snapshots %s lists %+v, want %s of %s with data >= %d bytes", src, list, snap, src, len(big)+5)
			}

			// export, rm, import under another name, restore into a new environment
			file := filepath.Join(t.TempDir(), "snap.denvsnap")
			mustDenv(t, "snapshot", "export", snap, "-o", file)
			mustDenv(t, "snapshot", "rm", snap)
			if vs := snapshotVolumes(t, c, snap); len(vs) > 0 {
				t.Errorf("snapshot rm left volumes %v", vs)
			}
			mustDenv(t, "snapshot", "import", file, "-n", snap2)
			dst := src + "-d"
			downOnCleanup(t, b, dst)
			port, err := freePort()
			if err != nil {
				t.Fatal(err)
			}
			def := filepath.Join(t.TempDir(), "kv2.denv")
			if err := os.WriteFile(def, []byte(fmt.Sprintf("IMAGE ex/db VOLUME data:/data PORT %d:8080\nEXPOSE db\n", port)), 0o644); err != nil {
				t.Fatal(err)
			}
			dstURL := endpoint(t, mustDenv(t, "run", "-n", dst, def), "db")
			mustHTTP(t, "PUT", dstURL+"/kv/small", "in the new environment")
			mustDenv(t, "restore", dst, snap2)
			poll(t, "the restored environment answers", func() error { _, _, err := httpDo("GET", dstURL+"/kv/small", ""); return err })
			if got := mustHTTP(t, "GET", dstURL+"/kv/big", ""); got != big {
				t.Errorf("imported snapshot restored into %s: big has %d bytes, want %d", dst, len(got), len(big))
			}
			got, err = vc.VolumeChecksum(ctx, dst+"_data", volumecopy.CopyOptions{Copier: copier})
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("listing after export, import, restore differs:\nsnapshotted:\n%s\nrestored:\n%s", want, got)
			}

			// a corrupted export: refused, nothing imported
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0xff
			corrupt := filepath.Join(t.TempDir(), "corrupt.denvsnap")
			if err := os.WriteFile(corrupt, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, errOut, code := denv(t, "snapshot", "import", corrupt, "-n", bad); code == 0 || !strings.Contains(errOut, "cannot import snapshot") {
				t.Errorf("import of a corrupted file: exit %d, stderr %q; want a refusal", code, errOut)
			}
			if vs := snapshotVolumes(t, c, bad); len(vs) > 0 {
				t.Errorf("refused import left volumes %v", vs)
			}

			// rm --volumes of the environment keeps its snapshots
			mustDenv(t, "snapshot", dst, "-n", snap)
			mustDenv(t, "rm", "--force", "--volumes", dst)
			if _, err := c.VolumeInspect(ctx, dst+"_data", client.VolumeInspectOptions{}); err == nil {
				t.Errorf("rm --volumes kept %s_data", dst)
			}
			if vs := snapshotVolumes(t, c, snap); len(vs) != 2 {
				t.Errorf("after rm --volumes of %s its snapshot has volumes %v, want its data and head volumes", dst, vs)
			}
		})
	}
}

// snapshottedSource runs cloneSource's environment with "hello" stored
// under small, and takes its snapshot SRC-s (removed when the test
// ends); it returns the environment, its endpoint and the snapshot.
func snapshottedSource(t *testing.T, b *backend.Backend, c *client.Client) (src, url, snap string) {
	t.Helper()
	src, url = cloneSource(t, b)
	snap = src + "-s"
	removeSnapshotsOnCleanup(t, c, snap)
	mustHTTP(t, "PUT", url+"/kv/small", "hello")
	mustDenv(t, "snapshot", src, "-n", snap)
	return src, url, snap
}

// TestE2ERestoreMismatch: a snapshot whose volumes are not the
// environment's is refused, naming the difference, and nothing changes.
func TestE2ERestoreMismatch(t *testing.T) {
	b := e2e(t)
	useStaticCopier(t)
	c := dockerClient(t)
	src, _, snap := snapshottedSource(t, b, c)
	other := src + "-o"
	downOnCleanup(t, b, other)
	def := filepath.Join(t.TempDir(), "other.denv")
	if err := os.WriteFile(def, []byte("IMAGE ex/db VOLUME store:/data PORT 8080\nEXPOSE db\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustDenv(t, "run", "-n", other, def)
	_, errOut, code := denv(t, "restore", other, snap)
	if code == 0 || !strings.Contains(errOut, other+" has volumes store that the snapshot lacks") || !strings.Contains(errOut, "the snapshot has volumes data that "+other+" lacks") {
		t.Errorf("restore of a mismatched snapshot: exit %d, stderr %q", code, errOut)
	}
}

// interruptAtCopy runs `bin args...` and sends it SIGINT (Ctrl-C) once it
// prints that it copies a volume (the copier runs then: the containers
// paused, or the environment stopped); it returns the command's stderr
// and fails unless the interruption is what ended it.
func interruptAtCopy(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sent := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if !sent && strings.HasPrefix(sc.Text(), "copying volume ") {
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			sent = true
		}
	}
	err = cmd.Wait()
	if !sent || err == nil {
		t.Fatalf("denv %s was not interrupted while copying (exit %v):\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return errOut.String()
}

// TestE2ESnapshotRestoreInterrupted: Ctrl-C during the copy of a snapshot
// leaves no snapshot (none listed, no volume) and the source running;
// during the copy of a restore, the environment's data as it was, and it
// running again.
func TestE2ESnapshotRestoreInterrupted(t *testing.T) {
	b := e2e(t)
	bin := useStaticCopier(t) // a static denv: the copier and the CLI
	c := dockerClient(t)
	ctx := context.Background()
	vc := volumecopy.New(b)
	src, url := cloneSource(t, b)
	snap, full := src+"-s", src+"-f"
	removeSnapshotsOnCleanup(t, c, snap, full)
	// 512 MiB: far more than the moment the signal takes to arrive, also
	// for a copy on this host (as root: about 2 GB/s into the page cache)
	blob := strings.Repeat("denv snapshot interrupted\n", (64<<20)/26)
	for i := range 8 {
		mustHTTP(t, "PUT", fmt.Sprintf("%s/kv/blob%d", url, i), blob)
	}
	mustHTTP(t, "PUT", url+"/kv/small", "before")

	errOut := interruptAtCopy(t, bin, "snapshot", src, "-n", snap)
	if !strings.Contains(errOut, "interrupt signal received") {
		t.Errorf("interrupted snapshot: stderr %q, want the interruption", errOut)
	}
	if vs := snapshotVolumes(t, c, snap); len(vs) > 0 {
		t.Errorf("interrupted snapshot left volumes %v", vs)
	}
	var list []snapshotInfo
	if err := json.Unmarshal([]byte(mustDenv(t, "snapshots", src, "--format", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("after an interrupted snapshot, snapshots lists %+v", list)
	}
	if got := mustHTTP(t, "GET", url+"/kv/small", ""); got != "before" {
		t.Errorf("the source answers %q after the interrupted snapshot, want before", got)
	}

	mustDenv(t, "snapshot", src, "-n", full)
	mustHTTP(t, "PUT", url+"/kv/small", "after")
	before, err := vc.VolumeChecksum(ctx, src+"_data", volumecopy.CopyOptions{Copier: bin})
	if err != nil {
		t.Fatal(err)
	}
	errOut = interruptAtCopy(t, bin, "restore", src, full)
	if !strings.Contains(errOut, "data is as it was") {
		t.Errorf("interrupted restore: stderr %q, want \"data is as it was\"", errOut)
	}
	poll(t, "the environment answers after the interrupted restore", func() error { _, _, err := httpDo("GET", url+"/kv/small", ""); return err })
	if got := mustHTTP(t, "GET", url+"/kv/small", ""); got != "after" {
		t.Errorf("after the interrupted restore small is %q, want after (as it was)", got)
	}
	got, err := vc.VolumeChecksum(ctx, src+"_data", volumecopy.CopyOptions{Copier: bin})
	if err != nil {
		t.Fatal(err)
	}
	if got != before {
		t.Errorf("listing after the interrupted restore differs:\nbefore:\n%s\nafter:\n%s", before, got)
	}
}
