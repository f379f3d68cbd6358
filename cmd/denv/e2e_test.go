package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/backendtest"
)

// demoImages are the seed's images the end-to-end tests run
// (scripts/build-images.sh, `make images`).
var demoImages = []string{"ex/web", "ex/db", "ex/worker", "ex/expert-system"}

// e2e returns a Backend and a private DENV_HOME for an end-to-end test of
// the CLI, after checking that the demo images exist.
func e2e(t *testing.T) *backend.Backend {
	t.Helper()
	b := backendtest.Require(t)
	ctx := context.Background()
	for _, ref := range demoImages {
		_, ok, err := b.ImageLabels(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			msg := fmt.Sprintf("image %s is missing: run make images", ref)
			if os.Getenv(backendtest.EnvVar) == "require" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	t.Setenv("DENV_HOME", filepath.Join(t.TempDir(), "denv-home"))
	return b
}

// denv runs the CLI in-process and returns its output and exit code.
func denv(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// mustDenv runs the CLI and fails the test unless it succeeds.
func mustDenv(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := denv(t, args...)
	if code != 0 {
		t.Fatalf("denv %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

var endpointLine = regexp.MustCompile(`(?m)^(\S+)  http://127\.0\.0\.1:(\d+)$`)

// endpoint returns the URL printed for service in the output of run/start.
func endpoint(t *testing.T, out, service string) string {
	t.Helper()
	for _, m := range endpointLine.FindAllStringSubmatch(out, -1) {
		if m[1] == service {
			return "http://127.0.0.1:" + m[2]
		}
	}
	t.Fatalf("no endpoint for %s in:\n%s", service, out)
	return ""
}

// poll calls f until it returns nil or the deadline passes.
func poll(t *testing.T, what string, f func() error) {
	t.Helper()
	pollFor(t, what, 30*time.Second, 100*time.Millisecond, f)
}

// pollFor calls f every interval until it succeeds, failing the test with
// f's last error after timeout.
func pollFor(t *testing.T, what string, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(interval)
	}
}

func httpDo(method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), err
}

// downOnCleanup removes the environment and its record when the test ends,
// whatever the test did.
func downOnCleanup(t *testing.T, b *backend.Backend, id string) {
	backendtest.DownOnCleanup(t, b, id)
}

// dockerClient is a plain Docker API client, to check what the engine
// holds independently of the backend under test.
func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// projectResources returns the names of the networks and volumes labelled
// with the compose project id.
func projectResources(t *testing.T, c *client.Client, id string) (networks, volumes []string) {
	t.Helper()
	ctx := context.Background()
	f := client.Filters{}.Add("label", "com.docker.compose.project="+id)
	ns, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns.Items {
		networks = append(networks, n.Name)
	}
	vs, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Items {
		volumes = append(volumes, v.Name)
	}
	return networks, volumes
}

// listed returns the environment id in `denv envs --format json [--all]`.
func listed(t *testing.T, id string, all bool) (envJSON, bool) {
	t.Helper()
	args := []string{"envs", "--format", "json"}
	if all {
		args = append(args, "--all")
	}
	var list []envJSON
	if err := json.Unmarshal([]byte(mustDenv(t, args...)), &list); err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if e.ID == id {
			return e, true
		}
	}
	return envJSON{}, false
}

// seedOK asks the seed's expert system at url for its answer: an error
// unless web, db and worker are all "ok".
func seedOK(url string) error {
	code, body, err := httpDo("GET", url+"/", "")
	if err != nil {
		return err
	}
	var answer map[string]any
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		return fmt.Errorf("status %d: %v: %s", code, err, body)
	}
	for _, k := range []string{"web", "db", "worker"} {
		if answer[k] != "ok" {
			return fmt.Errorf("%s is %v in %s", k, answer[k], body)
		}
	}
	return nil
}

func TestE2ERunExpertSystem(t *testing.T) {
	b := e2e(t)
	ctx := context.Background()
	id := backendtest.ProjectName(t)
	downOnCleanup(t, b, id)
	def, err := filepath.Abs("../../examples/expert-system-env.denv")
	if err != nil {
		t.Fatal(err)
	}

	out := mustDenv(t, "run", def, "-n", id)
	url := endpoint(t, out, "expert-system")
	poll(t, "expert-system answers web/db/worker ok", func() error { return seedOK(url) })

	// The expert system reaches only what web-env exposes.
	nets, err := b.Networks(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(nets["expert-system"]) == 0 || len(nets["web-env-db"]) == 0 {
		t.Fatalf("networks: %v", nets)
	}
	for _, n := range nets["expert-system"] {
		for _, m := range nets["web-env-db"] {
			if n == m {
				t.Errorf("expert-system and web-env-db share network %s (%v)", n, nets)
			}
		}
	}

	// The record keeps the exact project that was started.
	recorded, err := os.ReadFile(filepath.Join(os.Getenv("DENV_HOME"), "envs", id, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if compiled := mustDenv(t, "compile", def, "--name", id); compiled != string(recorded) {
		t.Errorf("recorded compose.yaml differs from the compiled project:\n%s\n---\n%s", recorded, compiled)
	}
	e, ok := listed(t, id, false)
	if !ok || e.Status != "running" || e.Definition == "" || len(e.Services) != 4 || len(e.Ports) != 1 {
		t.Fatalf("denv envs: %+v (listed %v)", e, ok)
	}
	if p := e.Ports[0]; p.Service != "expert-system" || p.ContainerPort != 8080 || "http://127.0.0.1:"+strconv.Itoa(int(p.HostPort)) != url {
		t.Errorf("denv envs port %+v, run printed %s", p, url)
	}

	// A taken name is refused and changes nothing.
	_, errOut, code := denv(t, "run", def, "-n", id)
	if code == 0 || !strings.Contains(errOut, "already exists") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("second run with one name: exit %d, %q", code, errOut)
	}
	if e, _ := listed(t, id, false); e.Status != "running" {
		t.Errorf("after a refused run: status %q", e.Status)
	}

	// Unknown ids are one-line errors.
	for _, cmd := range []string{"start", "stop", "rm", "logs"} {
		_, errOut, code := denv(t, cmd, "no-such-env")
		if code == 0 || errOut != "denv: no environment \"no-such-env\" (see 'denv envs --all')\n" {
			t.Errorf("denv %s no-such-env: exit %d, %q", cmd, code, errOut)
		}
	}

	// rm refuses a running environment; --force removes everything.
	if _, errOut, code := denv(t, "rm", id); code == 0 || !strings.Contains(errOut, "is running") {
		t.Errorf("rm of a running env: exit %d, %q", code, errOut)
	}
	mustDenv(t, "rm", "--force", id)
	cs, err := b.Ps(ctx, id)
	if err != nil || len(cs) != 0 {
		t.Errorf("containers left after rm: %v %v", cs, err)
	}
	if ns, _ := projectResources(t, dockerClient(t), id); len(ns) != 0 {
		t.Errorf("networks left after rm: %v", ns)
	}
	if _, ok := listed(t, id, true); ok {
		t.Errorf("%s still listed after rm", id)
	}
}

// kvDef writes a definition running ex/db with a named volume on /data,
// named after the test, and returns its path.
func kvDef(t *testing.T) string {
	t.Helper()
	name := backendtest.ProjectName(t)
	path := filepath.Join(t.TempDir(), name+".denv")
	if err := os.WriteFile(path, []byte("IMAGE ex/db VOLUME data:/data\nEXPOSE db\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestE2EStopStartRmKeepsData(t *testing.T) {
	b := e2e(t)
	ctx := context.Background()
	def := kvDef(t)
	id := strings.TrimSuffix(filepath.Base(def), ".denv") + "-1" // the free id run picks
	downOnCleanup(t, b, id)
	docker := dockerClient(t)

	out := mustDenv(t, "run", def)
	if !strings.HasPrefix(out, "db  http://127.0.0.1:") {
		t.Fatalf("run printed %q", out)
	}
	if _, ok := listed(t, id, false); !ok {
		t.Fatalf("run without -n did not make %s", id)
	}
	random := make([]byte, 8)
	rand.Read(random)
	value := hex.EncodeToString(random)
	put := func(url string) {
		poll(t, "PUT", func() error {
			code, body, err := httpDo("PUT", url+"/kv/k", value)
			if err == nil && code/100 != 2 {
				err = fmt.Errorf("status %d: %s", code, body)
			}
			return err
		})
	}
	get := func(url string) {
		t.Helper()
		poll(t, "GET the stored value", func() error {
			code, body, err := httpDo("GET", url+"/kv/k", "")
			if err == nil && (code != 200 || body != value) {
				err = fmt.Errorf("status %d, body %q, want %q", code, body, value)
			}
			return err
		})
	}
	put(endpoint(t, out, "db"))
	get(endpoint(t, out, "db"))
	if logs := mustDenv(t, "logs", id, "db"); !regexp.MustCompile(`(?m)^db-1 +\| .*listening on :8080$`).MatchString(logs) {
		t.Errorf("denv logs: %q", logs)
	}

	// stop: no container runs, the environment is still known.
	mustDenv(t, "stop", id)
	cs, err := b.Ps(ctx, id)
	if err != nil || len(cs) != 1 {
		t.Fatalf("ps after stop: %v %v", cs, err)
	}
	if cs[0].State == "running" {
		t.Errorf("container still running after stop: %+v", cs[0])
	}
	if e, _ := listed(t, id, false); e.Status != "stopped" {
		t.Errorf("status after stop: %q", e.Status)
	}

	// start: back, with the data.
	out = mustDenv(t, "start", id)
	get(endpoint(t, out, "db"))

	// rm of a stopped env keeps the volume: a new run with the id finds the data.
	mustDenv(t, "stop", id)
	mustDenv(t, "rm", id)
	if cs, _ := b.Ps(ctx, id); len(cs) != 0 {
		t.Errorf("containers left after rm: %v", cs)
	}
	ns, vs := projectResources(t, docker, id)
	if len(ns) != 0 || len(vs) != 1 {
		t.Errorf("after rm: networks %v (want none), volumes %v (want the data volume)", ns, vs)
	}
	out = mustDenv(t, "run", def, "-n", id)
	get(endpoint(t, out, "db"))

	// rm --force --volumes removes the data too.
	mustDenv(t, "rm", "--force", "--volumes", id)
	if ns, vs := projectResources(t, docker, id); len(ns) != 0 || len(vs) != 0 {
		t.Errorf("after rm --volumes: networks %v, volumes %v", ns, vs)
	}
}

func TestE2ERunRaceOneName(t *testing.T) {
	b := e2e(t)
	def := kvDef(t)
	id := backendtest.ProjectName(t)
	downOnCleanup(t, b, id)

	const n = 2
	var wg sync.WaitGroup
	codes := make([]int, n)
	errs := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i], codes[i] = denv(t, "run", def, "-n", id)
		}()
	}
	wg.Wait()
	won := 0
	for i := range n {
		switch {
		case codes[i] == 0:
			won++
		case !strings.Contains(errs[i], "already exists"):
			t.Errorf("loser's error: %q", errs[i])
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing runs won: %q", won, n, errs)
	}
	cs, err := backendtest.Require(t).Ps(context.Background(), id)
	if err != nil || len(cs) != 1 || cs[0].State != "running" {
		t.Errorf("containers: %+v %v", cs, err)
	}
	mustDenv(t, "rm", "--force", "--volumes", id)
}

func TestE2EFailedRunLeavesNothing(t *testing.T) {
	b := e2e(t)
	id := backendtest.ProjectName(t)
	downOnCleanup(t, b, id)
	path := filepath.Join(t.TempDir(), "bad.denv")
	// ex/db starts; the absent image cannot be pulled (no registry).
	if err := os.WriteFile(path, []byte("IMAGE ex/db VOLUME data:/data\nIMAGE denv-test/absent-image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := denv(t, "run", path, "-n", id)
	// stderr also has compose's progress; the error is one "denv:" line.
	if code == 0 || !regexp.MustCompile(`(?m)^denv: .*denv-test/absent-image`).MatchString(errOut) || strings.Count(errOut, "denv: ") != 1 {
		t.Fatalf("run with a missing image: exit %d, %q", code, errOut)
	}
	if cs, _ := b.Ps(context.Background(), id); len(cs) != 0 {
		t.Errorf("containers left: %v", cs)
	}
	if ns, vs := projectResources(t, dockerClient(t), id); len(ns) != 0 || len(vs) != 0 {
		t.Errorf("left behind: networks %v, volumes %v", ns, vs)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("DENV_HOME"), "envs", id)); !os.IsNotExist(err) {
		t.Errorf("record left behind: %v", err)
	}

	// A definition that does not compile releases the name it claimed.
	bad := filepath.Join(t.TempDir(), "broken.denv")
	if err := os.WriteFile(bad, []byte("IMAGE ex/db LINK nowhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := denv(t, "run", bad, "-n", id); code == 0 || !regexp.MustCompile(`^\S*broken.denv:1:18: unknown target "nowhere"[^\n]*\n$`).MatchString(errOut) {
		t.Errorf("run of a broken definition: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("DENV_HOME"), "envs", id)); !os.IsNotExist(err) {
		t.Errorf("reservation left behind: %v", err)
	}
}

// benchBinaries builds the denv command and the Docker Compose CLI of the
// SDK version denv uses (github.com/docker/compose/v5/cmd, a standalone
// `docker-compose`), so that both are measured as separate processes.
func benchBinaries(b *testing.B) (denvBin, composeBin string) {
	b.Helper()
	dir := b.TempDir()
	denvBin, composeBin = filepath.Join(dir, "denv"), filepath.Join(dir, "docker-compose")
	if out, err := exec.Command("go", "build", "-o", denvBin, ".").CombinedOutput(); err != nil {
		b.Fatalf("building denv: %v\n%s", err, out)
	}
	modDir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/docker/compose/v5").Output()
	if err != nil {
		b.Fatalf("locating the compose module: %v", err)
	}
	// Built in its own module (denv's go.sum lacks the CLI's dependencies).
	cmd := exec.Command("go", "build", "-o", composeBin, "./cmd")
	cmd.Dir = strings.TrimSpace(string(modDir))
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Skipf("cannot build the docker compose CLI to compare with: %v\n%s", err, out)
	}
	return denvBin, composeBin
}

// timed runs name with args and returns how long it took (wall clock) and
// the CPU time it used (user + system), which depends less on the load of
// the machine.
func timed(b *testing.B, env []string, name string, args ...string) (wall, cpu time.Duration) {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall = time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// meter accumulates the wall and CPU time of the runs of one command.
type meter struct{ wall, cpu time.Duration }

func (m *meter) add(wall, cpu time.Duration) { m.wall += wall; m.cpu += cpu }

// report reports m's means in milliseconds, as NAME-ms and NAME-cpu-ms.
func (m meter) report(b *testing.B, name string) {
	n := float64(b.N)
	b.ReportMetric(float64(m.wall.Microseconds())/n/1000, name+"-ms")
	b.ReportMetric(float64(m.cpu.Microseconds())/n/1000, name+"-cpu-ms")
}

// BenchmarkRunVsComposeUp starts the seed's expert-system environment with
// `denv run` and the same compiled file with `docker compose up -d` (and
// `up -d --wait`, which waits like denv run does), alternating, each as its
// own process, and reports the mean of each and their ratios. Run it with
// e.g. -benchtime 10x; environments are removed between iterations.
func BenchmarkRunVsComposeUp(b *testing.B) {
	be := backendtest.Require(b)
	denvBin, composeBin := benchBinaries(b)
	home := b.TempDir()
	env := append(os.Environ(), "DENV_HOME="+home, "COMPOSE_PROGRESS=quiet")
	def, _ := filepath.Abs("../../examples/expert-system-env.denv")
	yamlFile := filepath.Join(home, "compose.yaml")
	var out, errb bytes.Buffer
	if Main([]string{"compile", def, "-o", yamlFile}, nil, &out, &errb) != 0 {
		b.Fatal(errb.String())
	}
	ctx := context.Background()
	down := func(id string) {
		if err := be.Down(ctx, id, true); err != nil {
			b.Fatal(err)
		}
	}
	var denvM, upM, upWaitM meter
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("bench-run-%d", i)
		denvM.add(timed(b, env, denvBin, "run", def, "-n", id))
		b.StopTimer()
		down(id)
		b.StartTimer()
		upM.add(timed(b, env, composeBin, "-p", id+"-c", "-f", yamlFile, "up", "-d"))
		b.StopTimer()
		down(id + "-c")
		b.StartTimer()
		upWaitM.add(timed(b, env, composeBin, "-p", id+"-w", "-f", yamlFile, "up", "-d", "--wait"))
		b.StopTimer()
		down(id + "-w")
		b.StartTimer()
	}
	denvM.report(b, "denv-run")
	upM.report(b, "compose-up")
	upWaitM.report(b, "compose-up-wait")
	b.ReportMetric(float64(denvM.wall)/float64(upM.wall), "ratio-vs-up")
	b.ReportMetric(float64(denvM.wall)/float64(upWaitM.wall), "ratio-vs-up-wait")
	b.ReportMetric(float64(denvM.cpu)/float64(upM.cpu), "cpu-ratio-vs-up")
}

// BenchmarkEnvsVsComposeLs lists environments with `denv envs` and `docker
// compose ls` (alternating, each as its own process) while one environment
// runs, and reports the mean of each and their ratio.
func BenchmarkEnvsVsComposeLs(b *testing.B) {
	be := backendtest.Require(b)
	denvBin, composeBin := benchBinaries(b)
	home := b.TempDir()
	env := append(os.Environ(), "DENV_HOME="+home)
	def, _ := filepath.Abs("../../examples/expert-system-env.denv")
	id := "bench-envs"
	_, _ = timed(b, env, denvBin, "run", def, "-n", id)
	b.Cleanup(func() { be.Down(context.Background(), id, true) })
	var envsM, lsM meter
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		envsM.add(timed(b, env, denvBin, "envs"))
		lsM.add(timed(b, env, composeBin, "ls"))
	}
	envsM.report(b, "denv-envs")
	lsM.report(b, "compose-ls")
	b.ReportMetric(float64(envsM.wall)/float64(lsM.wall), "ratio")
	b.ReportMetric(float64(envsM.cpu)/float64(lsM.cpu), "cpu-ratio")
}
