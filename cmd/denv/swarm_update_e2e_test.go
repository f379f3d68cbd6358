package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/backendtest"
	"github.com/alebellu/denv/plan"
	"github.com/alebellu/denv/records"
)

// swarmService is what the engine shows of one service of a stack: its
// id, its spec (hashed: the engine's version index also moves when swarm
// records an update's progress), and its running task and that task's
// container.
type swarmService struct {
	ID        string
	Spec      string
	Task      string
	Container string
}

// stackState returns the services of stack id by name (without the stack
// prefix), each with its running task when it has exactly one.
func stackState(t *testing.T, c *client.Client, id string) map[string]swarmService {
	t.Helper()
	ctx := context.Background()
	f := client.Filters{}.Add("label", "com.docker.stack.namespace="+id)
	svcs, err := c.ServiceList(ctx, client.ServiceListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := c.TaskList(ctx, client.TaskListOptions{Filters: f.Clone().Add("desired-state", "running")})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]swarmService{}
	for _, s := range svcs.Items {
		spec, err := json.Marshal(s.Spec)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(spec)
		st := swarmService{ID: s.ID, Spec: hex.EncodeToString(sum[:8])}
		n := 0
		for _, tk := range tasks.Items {
			if tk.ServiceID == s.ID && tk.Status.State == swarm.TaskStateRunning {
				n++
				st.Task = tk.ID
				if cs := tk.Status.ContainerStatus; cs != nil {
					st.Container = cs.ContainerID
				}
			}
		}
		if n != 1 {
			st.Task, st.Container = fmt.Sprintf("(%d running tasks)", n), ""
		}
		out[strings.TrimPrefix(s.Spec.Name, id+"_")] = st
	}
	return out
}

// hostEndpoint is the URL of the first port service publishes, as denv
// envs shows it.
func hostEndpoint(t *testing.T, id, service string) string {
	t.Helper()
	e, ok := listed(t, id, false)
	if ok {
		for _, p := range e.Ports {
			if p.Service == service && p.HostPort != 0 {
				return fmt.Sprintf("http://127.0.0.1:%d", p.HostPort)
			}
		}
	}
	t.Fatalf("%s publishes no port: %+v", service, e)
	return ""
}

// testSwarmUpdate is TestE2EUpdate on the swarm engine: db (with a named
// volume) and web as a stack in host publish mode; --dry-run changes no
// service spec, task or record; changing db's SET updates db only (web
// keeps its task and container) and the volume's data survives; adding
// and removing a service do exactly that; an update to a missing image
// fails and changes nothing; --previous goes back.
func testSwarmUpdate(t *testing.T, b *backend.Backend) {
	random := make([]byte, 4)
	rand.Read(random)
	id := backendtest.ProjectName(t)
	removeStackOnCleanup(t, b, id)
	c := dockerClient(t)
	def := filepath.Join(t.TempDir(), "app.denv")
	write := func(src string) {
		t.Helper()
		if err := os.WriteFile(def, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	record := func() []byte {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(os.Getenv("DENV_HOME"), "envs", id, records.RecordFile))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	kv := func(method, value string) func() error {
		return func() error {
			url := hostEndpoint(t, id, "db") + "/kv/k"
			code, body, err := httpDo(method, url, value)
			if err == nil && (code/100 != 2 || method == "GET" && body != value) {
				err = fmt.Errorf("%s %s: status %d, body %q", method, url, code, body)
			}
			return err
		}
	}

	write("IMAGE ex/db VOLUME data:/data SET A=1\nIMAGE ex/web\nEXPOSE db\n")
	mustDenv(t, "run", "--engine", "swarm", "--publish-mode", "host", def, "-n", id)
	value := hex.EncodeToString(random)
	swarmPoll(t, "PUT into db", kv("PUT", value))
	before, rec0 := stackState(t, c, id), record()
	if len(before) != 2 || before["db"].Container == "" || before["web"].Container == "" {
		t.Fatalf("stack after run: %+v", before)
	}

	// a changed SET (and a comment moving the lines): dry run first
	write("# moved\nIMAGE ex/db VOLUME data:/data SET A=2\nIMAGE ex/web\nEXPOSE db\n")
	out := mustDenv(t, "update", id, "--dry-run", "--format", "json")
	var p plan.Plan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, out)
	}
	if s, _ := p.Service("db"); s.Action != plan.Recreate || !strings.Contains(fmt.Sprint(s.Changes), "environment") {
		t.Errorf("plan for db: %+v", s)
	}
	if s, _ := p.Service("web"); s.Action != plan.Unchanged {
		t.Errorf("plan for web (only its line moved): %+v", s)
	}
	if now := stackState(t, c, id); fmt.Sprint(now) != fmt.Sprint(before) || !bytes.Equal(record(), rec0) {
		t.Fatalf("--dry-run changed the stack: %+v -> %+v (record changed: %v)", before, now, !bytes.Equal(record(), rec0))
	}

	out = mustDenv(t, "update", id)
	if !strings.Contains(out, "~ db (") || !strings.Contains(out, "= web (unchanged)") || !strings.Contains(out, "db  http://") {
		t.Errorf("update printed %q", out)
	}
	after := stackState(t, c, id)
	if after["web"] != before["web"] || after["db"].ID != before["db"].ID || after["db"].Container == "" ||
		after["db"].Task == before["db"].Task || after["db"].Container == before["db"].Container {
		t.Errorf("stack %+v -> %+v: want db updated (new task), web untouched", before, after)
	}
	swarmPoll(t, "GET the stored value after the update", kv("GET", value))
	if e, ok := listed(t, id, false); !ok || e.Updated == nil || e.Status != "running" {
		t.Errorf("denv envs: %+v, want running, updated set", e)
	}

	// add worker, remove web
	write("IMAGE ex/db VOLUME data:/data SET A=2\nIMAGE ex/worker\nEXPOSE db\n")
	mustDenv(t, "update", id)
	third := stackState(t, c, id)
	if third["db"] != after["db"] || third["worker"].Container == "" || len(third) != 2 {
		t.Errorf("stack %+v -> %+v: want worker added, web removed, db untouched", after, third)
	}

	// a missing image: fails before changing anything
	rec2 := record()
	write("IMAGE ex/db VOLUME data:/data SET A=2\nIMAGE ex/worker\nIMAGE ex/missing-" + value + "\nEXPOSE db\n")
	_, errOut, code := denv(t, "update", id)
	if code == 0 || !strings.Contains(errOut, "ex/missing-"+value) || !strings.Contains(errOut, "nothing was changed") || strings.Count(errOut, "denv:") != 1 {
		t.Errorf("update to a missing image: exit %d, %q", code, errOut)
	}
	if now := stackState(t, c, id); fmt.Sprint(now) != fmt.Sprint(third) || !bytes.Equal(record(), rec2) {
		t.Errorf("after a failed update: %+v -> %+v (record changed: %v)", third, now, !bytes.Equal(record(), rec2))
	}

	// --previous: back to db + web
	mustDenv(t, "update", id, "--previous")
	back := stackState(t, c, id)
	if back["web"].Container == "" || len(back) != 2 || back["db"] != third["db"] {
		t.Errorf("--previous: %+v, want db (untouched) and web", back)
	}
	swarmPoll(t, "GET the stored value after --previous", kv("GET", value))

	mustDenv(t, "rm", "--force", "--volumes", id)
	if left := stackState(t, c, id); len(left) != 0 {
		t.Errorf("services after rm: %+v", left)
	}
}
