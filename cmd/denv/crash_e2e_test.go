package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/backendtest"
)

// buildDenv builds the denv command into a temporary directory: the
// crash tests kill it, which they cannot do to the in-process CLI.
func buildDenv(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "denv")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building denv: %v\n%s", err, out)
	}
	return bin
}

// engineCounts counts the containers (all, and running), networks and
// volumes labelled with the compose project id.
func engineCounts(t *testing.T, c *client.Client, id string) (containers, running, networks, volumes int) {
	t.Helper()
	f := client.Filters{}.Add("label", "com.docker.compose.project="+id)
	cs, err := c.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range cs.Items {
		if ct.State == "running" {
			running++
		}
	}
	ns, vs := projectResources(t, c, id)
	return len(cs.Items), running, len(ns), len(vs)
}

// removeByLabelOnCleanup removes whatever carries the project label id
// when the test ends (compose's down needs containers to find a project).
func removeByLabelOnCleanup(t *testing.T, b *backend.Backend, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := b.RemoveLeftovers(ctx, id, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// startRun starts `denv run def -n id` as a process of its own, its
// output kept for the test log.
func startRun(t *testing.T, bin, def, id string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(bin, "run", def, "-n", id)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &out
}

// killRun SIGKILLs the run and fails the test unless that is what ended
// it (a run that finished first did not die midway).
func killRun(t *testing.T, cmd *exec.Cmd, out *strings.Builder) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGKILL)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the run was not killed midway (%v):\n%s", err, out.String())
	}
}

// pollFast calls f every 10 ms until it returns true, for 60 s at most.
func pollFast(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A run SIGKILLed at several points leaves an incomplete environment that
// envs --all shows, run refuses with how to get out, and rm --force
// --volumes removes entirely; then the name runs again.
func TestE2EKilledRunIsRemovable(t *testing.T) {
	b := e2e(t)
	bin := buildDenv(t)
	docker := dockerClient(t)
	seed, err := filepath.Abs("../../examples/expert-system-env.denv")
	if err != nil {
		t.Fatal(err)
	}
	kv := kvDef(t) // with a named volume
	home := os.Getenv("DENV_HOME")
	for _, point := range []struct {
		name string
		def  string
		// reached reports whether the run got as far as the point.
		reached func(id string) bool
	}{
		{"reserved", seed, func(id string) bool {
			_, err := os.Stat(filepath.Join(home, "envs", id, "lock"))
			return err == nil
		}},
		{"networks", seed, func(id string) bool {
			_, _, n, _ := engineCounts(t, docker, id)
			return n > 0
		}},
		{"volume", kv, func(id string) bool {
			_, _, _, v := engineCounts(t, docker, id)
			return v > 0
		}},
		{"containers", seed, func(id string) bool {
			c, _, _, _ := engineCounts(t, docker, id)
			return c > 0
		}},
		{"started", seed, func(id string) bool {
			_, r, _, _ := engineCounts(t, docker, id)
			return r > 0
		}},
	} {
		t.Run(point.name, func(t *testing.T) {
			id := backendtest.ProjectName(t)
			removeByLabelOnCleanup(t, b, id)
			cmd, out := startRun(t, bin, point.def, id)
			pollFast(t, "the run to reach the point", func() bool { return point.reached(id) })
			killRun(t, cmd, out)
			c, r, n, v := engineCounts(t, docker, id)
			t.Logf("killed with %d containers (%d running), %d networks, %d volumes", c, r, n, v)

			e, ok := listed(t, id, true)
			if !ok || e.Status != statusIncomplete || e.RunAlive || e.Definition != "" {
				t.Fatalf("envs --all after the kill: %+v (listed %v)", e, ok)
			}
			if _, ok := listed(t, id, false); ok {
				t.Errorf("incomplete %s listed without --all", id)
			}
			_, errOut, code := denv(t, "run", point.def, "-n", id)
			if want := fmt.Sprintf("denv: environment %q already exists as an interrupted run: remove it with 'denv rm --force %s'\n", id, id); code == 0 || errOut != want {
				t.Errorf("run of the interrupted name: exit %d, %q, want %q", code, errOut, want)
			}

			if r > 0 { // like rm of a recorded environment: not without --force
				_, errOut, code := denv(t, "rm", id)
				if code == 0 || !strings.Contains(errOut, fmt.Sprintf("environment %q (an interrupted run) has running containers (", id)) {
					t.Errorf("rm without --force of running leftovers: exit %d, %q", code, errOut)
				}
				if e, ok := listed(t, id, true); !ok || e.Status != statusIncomplete || e.RunAlive {
					t.Errorf("after a refused rm: %+v (listed %v)", e, ok)
				}
			}
			mustDenv(t, "rm", "--force", "--volumes", id)
			if c, _, n, v := engineCounts(t, docker, id); c+n+v != 0 {
				t.Errorf("after rm: %d containers, %d networks, %d volumes", c, n, v)
			}
			if _, err := os.Stat(filepath.Join(home, "envs", id)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("directory after rm: %v", err)
			}
			if _, ok := listed(t, id, true); ok {
				t.Errorf("%s still listed after rm", id)
			}

			// The name is free: a run takes it and records it.
			mustDenv(t, "run", point.def, "-n", id)
			if e, ok := listed(t, id, false); !ok || e.Status != "running" {
				t.Errorf("run after rm: %+v (listed %v)", e, ok)
			}
			mustDenv(t, "rm", "--force", "--volumes", id)
		})
	}
}

// While the run lives (here stopped by SIGSTOP after its reservation) its
// name is "incomplete (starting)" and nothing takes it: not rm, not run.
func TestE2ELiveRunIsNotTaken(t *testing.T) {
	b := e2e(t)
	bin := buildDenv(t)
	docker := dockerClient(t)
	def := kvDef(t)
	id := backendtest.ProjectName(t)
	removeByLabelOnCleanup(t, b, id)
	home := os.Getenv("DENV_HOME")
	cmd, out := startRun(t, bin, def, id)
	pollFast(t, "the reservation", func() bool {
		_, err := os.Stat(filepath.Join(home, "envs", id, "lock"))
		return err == nil
	})
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	e, ok := listed(t, id, true)
	if !ok || e.Status != statusIncomplete || !e.RunAlive {
		t.Fatalf("envs --all while the run lives: %+v (listed %v)", e, ok)
	}
	if table := mustDenv(t, "envs", "--all"); !strings.Contains(table, "incomplete (starting)") {
		t.Errorf("envs --all table:\n%s", table)
	}
	pid := cmd.Process.Pid
	_, errOut, code := denv(t, "rm", "--force", "--volumes", id)
	if want := fmt.Sprintf("denv: environment %q is being started by another denv process (pid %d): wait for it, or stop that process, then 'denv rm %s'\n", id, pid, id); code == 0 || errOut != want {
		t.Errorf("rm of a live run: exit %d, %q, want %q", code, errOut, want)
	}
	_, errOut, code = denv(t, "run", def, "-n", id)
	if code == 0 || !strings.Contains(errOut, fmt.Sprintf("already exists: another denv process (pid %d) is starting it", pid)) {
		t.Errorf("run of a live run's name: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(home, "envs", id, "lock")); err != nil {
		t.Errorf("the live run's claim was touched: %v", err)
	}
	// Let it go on: it finishes and records the environment.
	cmd.Process.Signal(syscall.SIGCONT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the run resumed failed: %v\n%s", err, out.String())
	}
	if e, ok := listed(t, id, false); !ok || e.Status != "running" || e.RunAlive {
		t.Errorf("after the run: %+v (listed %v)", e, ok)
	}
	mustDenv(t, "rm", "--force", "--volumes", id)
	if c, _, n, v := engineCounts(t, docker, id); c+n+v != 0 {
		t.Errorf("after rm: %d containers, %d networks, %d volumes", c, n, v)
	}
}

// A run whose stdout and stderr are a pipe closed after the first line
// (`denv run ... 2>&1 | head -1`) is not killed by SIGPIPE: it completes
// and records a running environment. So does a clone whose output is
// closed from the start.
func TestE2EClosedPipeDoesNotKillRun(t *testing.T) {
	b := e2e(t)
	bin := buildDenv(t)
	id := backendtest.ProjectName(t)
	removeByLabelOnCleanup(t, b, id)
	def, err := filepath.Abs("../../examples/expert-system-env.denv")
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", def, "-n", id)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	first, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // as head -1 exits
	err = cmd.Wait()
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
		t.Fatalf("the run died of %v after printing %q", ws.Signal(), first)
	}
	// The endpoints could not be printed: exit 1, the environment is up.
	t.Logf("first line %q; exit: %v", first, err)
	e, ok := listed(t, id, false)
	if !ok || e.Status != "running" || len(e.Services) != 4 || len(e.Ports) != 1 {
		t.Fatalf("after a run with its output closed: %+v (listed %v)", e, ok)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", e.Ports[0].HostPort)
	poll(t, "expert-system answers web/db/worker ok", func() error { return seedOK(url) })

	// clone likewise keeps what it recorded when printing fails.
	clone := id + "-c"
	removeByLabelOnCleanup(t, b, clone)
	cmd = exec.Command(bin, "clone", id, "-n", clone)
	r, w, err = os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Run()
	w.Close()
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
		t.Fatalf("the clone died of %v", ws.Signal())
	}
	t.Logf("clone exit: %v", err)
	if e, ok := listed(t, clone, false); !ok || e.Status != "running" || len(e.Services) != 4 {
		t.Fatalf("after a clone with its output closed: %+v (listed %v)", e, ok)
	}
	mustDenv(t, "rm", "--force", clone)
	mustDenv(t, "rm", "--force", id)
}
