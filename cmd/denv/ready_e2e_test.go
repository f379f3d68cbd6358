package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend/backendtest"
)

// writeDef writes a definition named after the test into a temporary
// directory and returns its path.
func writeDef(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ready.denv")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// containerOf inspects the container of service in project id.
func containerOf(t *testing.T, c *client.Client, id, service string) client.ContainerInspectResult {
	t.Helper()
	ctx := context.Background()
	cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", "com.docker.compose.project="+id).Add("label", "com.docker.compose.service="+service)})
	if err != nil || len(cs.Items) != 1 {
		t.Fatalf("containers of %s: %v %v", service, cs.Items, err)
	}
	in, err := c.ContainerInspect(ctx, cs.Items[0].ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// containerLogs returns the output of container id.
func containerLogs(t *testing.T, c *client.Client, id string) string {
	t.Helper()
	r, err := c.ContainerLogs(context.Background(), id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out strings.Builder
	if _, err := stdcopy.StdCopy(&out, &out, r); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// startupLogs waits until container id has logged the outcome of its
// startup probe n times ("startup probe URL: ok" or "... failed"), and
// returns its logs: denv returns once the services it waits for are
// ready, and a service without READY may not have logged yet.
func startupLogs(t *testing.T, c *client.Client, id string, n int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := containerLogs(t, c, id)
		if strings.Count(logs, "startup probe ") >= n || time.Now().After(deadline) {
			return logs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestE2EReadyAfterDelay runs a db that listens only 3s after it starts
// (READY_DELAY) with READY, and a web LINKed to it that fetches db's
// /health once when it starts, without retrying (STARTUP_PROBE). The
// web's first and only connection must have succeeded, and db's health
// log must show failed checks before the success: the wait was real.
func TestE2EReadyAfterDelay(t *testing.T) {
	b := e2e(t)
	id := backendtest.ProjectName(t)
	downOnCleanup(t, b, id)
	def := writeDef(t, `IMAGE ex/db SET READY_DELAY=3s
  READY ["/app", "health"] WITHIN 30s
IMAGE ex/web LINK db SET STARTUP_PROBE=http://db:8080/health
EXPOSE web
`)
	mustDenv(t, "run", def, "-n", id)
	c := dockerClient(t)
	db := containerOf(t, c, id, "db")
	h := db.Container.State.Health
	if h == nil || h.Status != "healthy" {
		t.Fatalf("db health after run: %+v", h)
	}
	failed := 0
	for _, r := range h.Log {
		if r.ExitCode != 0 {
			failed++
		}
	}
	// The engine keeps the last 5 checks: at 500ms over 3s of delay,
	// failures are among them until a few successes push them out.
	if failed == 0 && len(h.Log) < 5 {
		t.Errorf("db health log has no failed check before it was ready: %+v", h.Log)
	}
	// The dependent started only once db was ready.
	dbStarted, _ := time.Parse(time.RFC3339Nano, db.Container.State.StartedAt)
	web := containerOf(t, c, id, "web")
	webStarted, _ := time.Parse(time.RFC3339Nano, web.Container.State.StartedAt)
	if d := webStarted.Sub(dbStarted); d < 3*time.Second {
		t.Errorf("web started %s after db, before its 3s delay", d)
	}
	logs := startupLogs(t, c, web.Container.ID, 1)
	if !strings.Contains(logs, "startup probe http://db:8080/health: ok") || strings.Contains(logs, "failed") {
		t.Errorf("web's first connection to db did not succeed; its logs:\n%s", logs)
	}
	// denv start waits the same way: db listens 3s after its restart,
	// and web's startup connection after its own restart succeeds too.
	mustDenv(t, "stop", id)
	mustDenv(t, "start", id)
	logs = startupLogs(t, c, web.Container.ID, 2)
	if strings.Count(logs, "startup probe http://db:8080/health: ok") != 2 || strings.Contains(logs, "failed") {
		t.Errorf("after denv start, web's connection to db did not succeed; its logs:\n%s", logs)
	}
}

// TestE2ENeverReadyFails runs a db never ready with READY WITHIN 3s: the
// run fails soon after the limit naming db, with its last check and log
// lines, and leaves nothing; with --keep-on-failure the containers stay
// (no record: the name is held as incomplete until rm --force).
func TestE2ENeverReadyFails(t *testing.T) {
	b := e2e(t)
	id := backendtest.ProjectName(t)
	removeByLabelOnCleanup(t, b, id)
	def := writeDef(t, `IMAGE ex/db SET READY_DELAY=1h VOLUME data:/data
  READY ["/app", "health"] WITHIN 3s
IMAGE ex/web LINK db
EXPOSE web
`)
	start := time.Now()
	_, errOut, code := denv(t, "run", def, "-n", id)
	took := time.Since(start)
	if code == 0 {
		t.Fatalf("run of a never ready service succeeded:\n%s", errOut)
	}
	// The healthcheck turns unhealthy at about 3s plus its last checks;
	// creating and removing the containers takes a few seconds more, up to
	// half a minute on a heavily loaded machine; the default limit (60s)
	// would take longer still.
	if took > 45*time.Second {
		t.Errorf("run failed after %s, want about the 3s limit", took)
	}
	for _, want := range []string{
		`(?m)^denv: cannot start environment ` + id + `: .*db.*unhealthy`,
		`(?m)^service db is unhealthy after \d[\d.]*s \(READY WITHIN 3s\)$`,
		`(?m)^  last check \(exit 1\): .*connection refused`,
		`(?m)^  last log lines of db:\n    .*not listening for 1h0m0s \(READY_DELAY\)`,
		`removed what it had created: 2 containers, 1 network, 1 volume`,
	} {
		if !regexp.MustCompile(want).MatchString(errOut) {
			t.Errorf("error lacks %s:\n%s", want, errOut)
		}
	}
	c := dockerClient(t)
	if cs, _, ns, vs := engineCounts(t, c, id); cs+ns+vs != 0 {
		t.Errorf("left behind: %d containers, %d networks, %d volumes", cs, ns, vs)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("DENV_HOME"), "envs", id)); !os.IsNotExist(err) {
		t.Errorf("record left behind: %v", err)
	}

	_, errOut, code = denv(t, "run", def, "-n", id, "--keep-on-failure")
	if code == 0 || !strings.Contains(errOut, "kept what it had created (--keep-on-failure)") || strings.Contains(errOut, "removed what") {
		t.Fatalf("run --keep-on-failure: exit %d\n%s", code, errOut)
	}
	if cs, _, ns, vs := engineCounts(t, c, id); cs != 2 || ns != 1 || vs != 1 {
		t.Errorf("--keep-on-failure kept %d containers, %d networks, %d volumes; want 2, 1, 1", cs, ns, vs)
	}
	if h := containerOf(t, c, id, "db").Container.State.Health; h == nil || h.Status != "unhealthy" {
		t.Errorf("kept db health: %+v", h)
	}
	// unrecorded, but the name is held: listed as incomplete, and
	// rm --force removes what was kept
	if e, ok := listed(t, id, true); !ok || e.Status != "incomplete" {
		t.Errorf("--keep-on-failure: envs --all lists %s as %+v (listed %v), want incomplete", id, e, ok)
	}
	mustDenv(t, "rm", "--force", "--volumes", id)
	if cs, _, ns, vs := engineCounts(t, c, id); cs != 0 || ns != 0 || vs != 0 {
		t.Errorf("rm --force --volumes after --keep-on-failure left %d containers, %d networks, %d volumes", cs, ns, vs)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("DENV_HOME"), "envs", id)); !os.IsNotExist(err) {
		t.Errorf("directory left behind after rm: %v", err)
	}
}

// TestStatusTextHealth shows the health counts after the status.
func TestStatusTextHealth(t *testing.T) {
	for _, tc := range []struct {
		h    *healthJSON
		want string
	}{
		{nil, "running"},
		{&healthJSON{}, "running"},
		{&healthJSON{Waiting: 2}, "running (2 waiting)"},
		{&healthJSON{Waiting: 1, Unhealthy: 1}, "running (1 waiting, 1 unhealthy)"},
	} {
		if got := statusText(envJSON{Status: "running", Health: tc.h}); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.h, got, tc.want)
		}
	}
}

// TestE2EImageHealthcheckLink LINKs a service without READY whose image
// declares a HEALTHCHECK (ex/db committed with one, under a name of the
// test's own): the runtime upgrades the dependency to service_healthy,
// so the web's only startup connection succeeds although db listens 3s
// late, and the web is started after it.
func TestE2EImageHealthcheckLink(t *testing.T) {
	b := e2e(t)
	c := dockerClient(t)
	ctx := context.Background()
	id := backendtest.ProjectName(t)
	tag := strings.TrimPrefix(id, "denvtest-")
	ref := "denv-test/hcdb:" + tag
	made, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Image: "ex/db"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ContainerCommit(ctx, made.ID, client.ContainerCommitOptions{Reference: ref,
		Changes: []string{`HEALTHCHECK --interval=500ms --timeout=2s --retries=60 CMD ["/app", "health"]`}})
	c.ContainerRemove(ctx, made.ID, client.ContainerRemoveOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true}) })
	downOnCleanup(t, b, id)
	def := writeDef(t, "IMAGE "+ref+" AS db SET READY_DELAY=3s\nIMAGE ex/web LINK db SET STARTUP_PROBE=http://db:8080/health\nEXPOSE web\n")
	mustDenv(t, "run", def, "-n", id)
	db := containerOf(t, c, id, "db")
	if h := db.Container.State.Health; h == nil || h.Status != "healthy" {
		t.Fatalf("db health after run: %+v", h)
	}
	web := containerOf(t, c, id, "web")
	dbStarted, _ := time.Parse(time.RFC3339Nano, db.Container.State.StartedAt)
	webStarted, _ := time.Parse(time.RFC3339Nano, web.Container.State.StartedAt)
	if d := webStarted.Sub(dbStarted); d < 3*time.Second {
		t.Errorf("web started %s after db, before its 3s delay", d)
	}
	if logs := startupLogs(t, c, web.Container.ID, 1); !strings.Contains(logs, "startup probe http://db:8080/health: ok") {
		t.Errorf("web's first connection to db did not succeed; its logs:\n%s", logs)
	}
}
