package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// update measures `denv update` (issue 15): one changed service of the
// seed environment converged by denv against the same change applied by
// docker-compose, and the plan of the 400-environment graph against
// itself through plan's Go benchmark (a `denv update --dry-run` of that
// graph would need its 2,001 containers running: the plan reads them).
func (b *bench) update() {
	// the plan first: right after the seed's environments are removed the
	// engine's cleanup competes for the CPU (the plan measured 449-549 ms
	// there against 165 ms alone)
	b.updatePlan()
	b.updateSeed()
}

// updateSeed runs the seed from a copy of examples/, then changes the SET
// of its worker back and forth: `denv update` of the environment against
// `docker-compose up -d` (and `up -d --wait`) of the same two compiled
// projects, each on its own project, taking turns. Each side recreates
// the worker and keeps the other three containers. denv update waits for
// the recreated worker's READY, as `up -d --wait` does; `up -d` returns
// before it.
func (b *bench) updateSeed() {
	const what = "denv update (seed, worker's SET changed)"
	peers := []string{"docker-compose up -d", "docker-compose up -d --wait"}
	if !b.ready([][2]string{{what, peers[0]}, {what, peers[1]}}, true, "run", "update", "compile") {
		return
	}
	b.logf("update of the seed's worker vs docker-compose up -d (%d runs)", b.lifeRuns)
	fail := func(err error) {
		for _, p := range peers {
			b.na(what, p, err.Error())
		}
	}
	home := []string{"DENV_HOME=" + filepath.Join(b.tmp, "update-home")}
	dir := filepath.Join(b.tmp, "update-seed")
	if out, err := exec.Command("cp", "-a", filepath.Join(b.repo, "examples"), dir).CombinedOutput(); err != nil {
		fail(fmt.Errorf("copying examples: %v: %s", err, firstLine(out)))
		return
	}
	seed := filepath.Join(dir, "expert-system-env.denv")
	workerDef := filepath.Join(dir, "ex", "worker-env.denv")
	orig, err := os.ReadFile(workerDef)
	if err != nil || !strings.Contains(string(orig), "IMAGE ex/worker\n") {
		fail(fmt.Errorf("the seed's worker definition changed (%v): update bench/update.go", err))
		return
	}
	// variant v sets BENCH=v on the worker
	variant := func(v string) error {
		return os.WriteFile(workerDef, []byte(strings.Replace(string(orig), "IMAGE ex/worker\n", "IMAGE ex/worker SET BENCH="+v+"\n", 1)), 0o644)
	}
	yamls := map[string]string{}
	for _, v := range []string{"a", "b"} {
		yamls[v] = filepath.Join(b.tmp, "update-"+v+".compose.yaml")
		if err := variant(v); err != nil {
			fail(err)
			return
		}
		if _, err := b.run(home, dir, b.denv, "compile", "-o", yamls[v], seed); err != nil {
			fail(err)
			return
		}
	}
	id := "denvbench-update"
	projects := []string{id + "-c", id + "-w"}
	for _, p := range append([]string{id}, projects...) {
		b.cleanups = append(b.cleanups, func() { b.run(nil, b.tmp, b.compose, "-p", p, "down", "-v", "-t", "1") })
	}
	if err := variant("a"); err != nil {
		fail(err)
		return
	}
	if _, err := b.run(home, dir, b.denv, "run", seed, "-n", id); err != nil {
		fail(err)
		return
	}
	// one side failing (compose's --wait has timed out on the seed's
	// healthchecks at a load average of 30) leaves the others measured
	times := make([][]time.Duration, 3)
	failed := make([]error, 3)
	for k, p := range projects {
		if _, err := b.run(nil, dir, b.compose, "-p", p, "-f", yamls["a"], "up", "-d", "--wait"); err != nil {
			failed[k+1] = err
		}
	}
	for i := range 2 * b.lifeRuns {
		v := []string{"b", "a"}[i%2]
		if err := variant(v); err != nil {
			fail(err)
			return
		}
		steps := []struct {
			env  []string
			name string
			args []string
		}{
			{home, b.denv, []string{"update", id}},
			{nil, b.compose, []string{"-p", projects[0], "-f", yamls[v], "up", "-d"}},
			{nil, b.compose, []string{"-p", projects[1], "-f", yamls[v], "up", "-d", "--wait"}},
		}
		// who goes first turns: a change of the machine's load falls on
		// each side in turn
		for j := range steps {
			k := (i + j) % len(steps)
			if failed[k] != nil {
				continue
			}
			r, err := b.run(steps[k].env, dir, steps[k].name, steps[k].args...)
			if err != nil {
				failed[k] = err
				continue
			}
			times[k] = append(times[k], r.wall)
		}
		if failed[0] != nil {
			fail(failed[0])
			return
		}
		// the --wait-less project's worker may still be starting: let it
		// become healthy untimed, so that each change starts from rest
		if failed[1] == nil {
			if _, err := b.run(nil, dir, b.compose, "-p", projects[0], "-f", yamls[v], "up", "-d", "--wait"); err != nil {
				failed[1] = err
			}
		}
	}
	for k, p := range peers {
		if failed[k+1] != nil {
			b.na(what, p, failed[k+1].Error())
			continue
		}
		b.compare(what, median(times[0]), p, median(times[k+1]), 1.05)
	}
}

// updatePlan runs plan's BenchmarkPlanGraph (the 400-environment graph
// planned against itself, as `denv update` plans it from a record that
// keeps its loaded project) and BenchmarkPlanGraphOneChange (one service
// changed: the new project goes through compose-go's loader), a few
// times each, taking turns.
func (b *bench) updatePlan() {
	rows := []struct{ name, what string }{
		{"PlanGraph", "update plan, 400 envs, no change (Go)"},
		{"PlanGraphOneChange", "update plan, 400 envs, one service changed (Go)"},
	}
	b.logf("update plan of the 400-environment graph (go test -bench, ./plan)")
	testBin := filepath.Join(b.tmp, "plan.test")
	if out, err := exec.Command("go", "test", "-c", "-o", testBin, "./plan").CombinedOutput(); err != nil {
		for _, r := range rows {
			b.na(r.what, "", "building the plan benchmarks: "+firstLine(out))
		}
		return
	}
	times := map[string][]time.Duration{}
	failed := map[string]string{}
	for range max(b.lifeRuns, 3) {
		for _, r := range rows {
			if failed[r.name] != "" {
				continue
			}
			d, why := b.goBenchOnce(testBin, filepath.Join(b.repo, "plan"), r.name, 1)
			if why != "" {
				failed[r.name] = why
				continue
			}
			times[r.name] = append(times[r.name], d)
		}
	}
	for i, r := range rows {
		switch {
		case failed[r.name] != "":
			b.na(r.what, "", failed[r.name])
		case i == 0:
			d := median(times[r.name])
			b.rows = append(b.rows, row{what: r.what, denv: fmtDur(d), target: "< 0.50 s", met: yesNo(d < 500*time.Millisecond)})
		default:
			b.rows = append(b.rows, row{what: r.what, denv: fmtDur(median(times[r.name]))})
		}
	}
}
