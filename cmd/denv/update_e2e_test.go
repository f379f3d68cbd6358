package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/plan"
	"github.com/alebellu/denv/records"
)

// TestE2EUpdate runs db (with a named volume) and web, then checks on the
// engine: --dry-run changes nothing; changing db's SET recreates db only
// (web keeps its container) and the volume's data survives; adding and
// removing a service do exactly that; an update to a missing image fails,
// leaves the containers and record as they were and says so; --previous
// goes back.
func TestE2EUpdate(t *testing.T) {
	b := e2e(t)
	random := make([]byte, 4)
	rand.Read(random)
	id := "update-e2e-" + hex.EncodeToString(random)
	downOnCleanup(t, b, id)
	c := dockerClient(t)
	dir := t.TempDir()
	def := filepath.Join(dir, "app.denv")
	write := func(src string) {
		t.Helper()
		if err := os.WriteFile(def, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ids := func() map[string]string {
		t.Helper()
		cs, err := c.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: client.Filters{}.Add("label", "com.docker.compose.project="+id)})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, x := range cs.Items {
			m[x.Labels["com.docker.compose.service"]] = x.ID
		}
		return m
	}
	record := func() []byte {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(os.Getenv("DENV_HOME"), "envs", id, records.RecordFile))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}

	write("IMAGE ex/db VOLUME data:/data SET A=1\nIMAGE ex/web\nEXPOSE db\n")
	mustDenv(t, "run", def, "-n", id, "--wait")
	url := ipv4Endpoint(t, id, "db")
	value := hex.EncodeToString(random)
	poll(t, "PUT", func() error {
		code, body, err := httpDo("PUT", url+"/kv/k", value)
		if err == nil && code/100 != 2 {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
	before, rec0 := ids(), record()

	// a changed SET (and a comment moving the lines): dry run first
	write("# moved\nIMAGE ex/db VOLUME data:/data SET A=2\nIMAGE ex/web\nEXPOSE db\n")
	out := mustDenv(t, "update", id, "--dry-run", "--format", "json")
	var p plan.Plan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, out)
	}
	if s, _ := p.Service("db"); s.Action != plan.Recreate {
		t.Errorf("plan for db: %+v", s)
	}
	if s, _ := p.Service("web"); s.Action != plan.Unchanged {
		t.Errorf("plan for web (only its line moved): %+v", s)
	}
	if after := ids(); fmt.Sprint(after) != fmt.Sprint(before) || !bytes.Equal(record(), rec0) {
		t.Fatalf("--dry-run changed the environment: containers %v -> %v", before, after)
	}
	out = mustDenv(t, "update", id, "--wait")
	if !strings.Contains(out, "~ db (") || !strings.Contains(out, "= web (unchanged)") {
		t.Errorf("update printed %q", out)
	}
	after := ids()
	if after["web"] != before["web"] || after["db"] == before["db"] || len(after) != 2 {
		t.Errorf("containers %v -> %v: want db recreated, web kept", before, after)
	}
	url = ipv4Endpoint(t, id, "db")
	poll(t, "GET the stored value after the update", func() error {
		code, body, err := httpDo("GET", url+"/kv/k", "")
		if err == nil && (code != 200 || body != value) {
			err = fmt.Errorf("status %d, body %q, want %q", code, body, value)
		}
		return err
	})
	if e, ok := listed(t, id, false); !ok || e.Updated == nil {
		t.Errorf("denv envs: %+v, want updated set", e)
	}

	// add worker, remove web
	write("IMAGE ex/db VOLUME data:/data SET A=2\nIMAGE ex/worker\nEXPOSE db\n")
	mustDenv(t, "update", id)
	third := ids()
	if third["db"] != after["db"] || third["worker"] == "" || third["web"] != "" || len(third) != 2 {
		t.Errorf("containers %v -> %v: want worker added, web removed, db kept", after, third)
	}

	// a missing image: fails, environment and record as they were
	rec2 := record()
	write("IMAGE ex/db VOLUME data:/data SET A=2\nIMAGE ex/worker\nIMAGE ex/missing-" + hex.EncodeToString(random) + "\nEXPOSE db\n")
	_, errOut, code := denv(t, "update", id)
	if code == 0 || !strings.Contains(errOut, "runs its recorded project again") {
		t.Errorf("update to a missing image: exit %d, %q", code, errOut)
	}
	if now := ids(); fmt.Sprint(now) != fmt.Sprint(third) || !bytes.Equal(record(), rec2) {
		t.Errorf("after a failed update: containers %v -> %v (record changed: %v)", third, now, !bytes.Equal(record(), rec2))
	}

	// --previous: back to db + web
	mustDenv(t, "update", id, "--previous")
	if back := ids(); back["web"] == "" || back["worker"] != "" || back["db"] != third["db"] {
		t.Errorf("--previous: containers %v, want db (kept) and web", back)
	}
}

// ipv4Endpoint is the URL of service's port published on IPv4 (the
// endpoints printed may include the IPv6 binding's port first).
func ipv4Endpoint(t *testing.T, id, service string) string {
	t.Helper()
	c := dockerClient(t)
	cs, err := c.ContainerList(context.Background(), client.ContainerListOptions{
		Filters: client.Filters{}.Add("label", "com.docker.compose.project="+id).Add("label", "com.docker.compose.service="+service)})
	if err != nil || len(cs.Items) != 1 {
		t.Fatalf("containers of %s: %v %v", service, cs.Items, err)
	}
	for _, p := range cs.Items[0].Ports {
		if p.PublicPort != 0 && p.IP.Is4() {
			return fmt.Sprintf("http://127.0.0.1:%d", p.PublicPort)
		}
	}
	t.Fatalf("%s publishes no IPv4 port: %+v", service, cs.Items[0].Ports)
	return ""
}

// TestE2EUpdateRecordsLoaded checks that run and update keep the loaded
// form of the project beside the record, restorable for the recorded
// project (what makes a plan skip compose-go's loader), and that update
// and rm refuse an environment another process holds (a racing update or
// rm), changing nothing, and work once it is released.
func TestE2EUpdateRecordsLoaded(t *testing.T) {
	b := e2e(t)
	random := make([]byte, 4)
	rand.Read(random)
	id := "update-held-" + hex.EncodeToString(random)
	downOnCleanup(t, b, id)
	dir := t.TempDir()
	def := filepath.Join(dir, "app.denv")
	write := func(src string) {
		t.Helper()
		if err := os.WriteFile(def, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	es, err := records.Open(filepath.Join(os.Getenv("DENV_HOME"), "envs"))
	if err != nil {
		t.Fatal(err)
	}
	restorable := func(when string) {
		t.Helper()
		rec, err := es.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		rec.Loaded = es.LoadedProject(id)
		if _, cached, err := backend.LoadDeployment(context.Background(), deployment(rec)); err != nil || !cached {
			t.Errorf("%s: the record's loaded form does not restore its project (%d bytes; cached %v, %v)", when, len(rec.Loaded), cached, err)
		}
	}

	write("IMAGE ex/web SET A=1\n")
	mustDenv(t, "run", def, "-n", id)
	restorable("after run")
	write("IMAGE ex/web SET A=2\n")
	mustDenv(t, "update", id)
	restorable("after update")

	hold, err := es.Hold(id)
	if err != nil {
		t.Fatal(err)
	}
	rec0, _ := os.ReadFile(filepath.Join(es.Dir(), id, records.RecordFile))
	write("IMAGE ex/web SET A=3\n")
	for _, args := range [][]string{{"update", id}, {"rm", "--force", id}} {
		_, errOut, code := denv(t, args...)
		if want := fmt.Sprintf("environment %q is busy: another denv process (pid %d)", id, os.Getpid()); code == 0 || !strings.Contains(errOut, want) {
			t.Errorf("denv %s while held: exit %d, %q; want %q", strings.Join(args, " "), code, errOut, want)
		}
	}
	if rec, _ := os.ReadFile(filepath.Join(es.Dir(), id, records.RecordFile)); !bytes.Equal(rec, rec0) {
		t.Error("the record changed while held")
	}
	envs, err := b.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(envs, func(e backend.EnvState) bool { return e.Name == id }); i < 0 || envs[i].Status != backend.StatusRunning {
		t.Errorf("environment after the refused rm: %+v", envs)
	}
	hold.Release()
	mustDenv(t, "rm", "--force", id)
	if _, err := es.Get(id); err == nil {
		t.Error("record still there after rm")
	}
}
