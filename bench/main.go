// Command bench measures denv against Docker Compose doing the same work and
// prints one table: every figure beside its peer from the same run, the
// median of several alternating runs, their ratio and the target. It is
// what `make bench` runs (through scripts/bench.sh, which first makes sure
// a daemon and the demo images are there); docs/PERFORMANCE.md explains the
// method and holds a run.
//
// The peer CLI is Docker Compose built from the module denv already depends
// on (github.com/docker/compose/v5/cmd, invoked standalone as
// `docker-compose`). Every part's denv command exists; a part whose command
// the denv binary under test lacks (an older build) prints "n/a (command
// missing)", and parts that need the Docker daemon print "n/a" with the
// reason when it cannot be reached.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alebellu/denv/internal/graphgen"
)

func main() {
	runs := flag.Int("runs", 7, "runs of each CLI measurement (the median is shown)")
	lifeRuns := flag.Int("lifecycle-runs", 3, "runs of run/stop/rm against up -d/stop/down, and of clone against cp -a")
	only := flag.String("only", "", "comma-separated parts to run (compile,memory,startup,defs,lifecycle,envs,clone,pull,update); empty: all")
	flag.Parse()
	if err := benchMain(context.Background(), *runs, *lifeRuns, *only, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// bench is one run of the suite: its binaries, scratch space and results.
type bench struct {
	ctx      context.Context
	tmp      string
	denv     string
	compose  string
	repo     string
	runs     int
	lifeRuns int
	log      io.Writer
	rows     []row
	cleanups []func()
}

// row is one line of the table.
type row struct {
	what, denv, peerName, peer, ratio, target, met string
}

func benchMain(ctx context.Context, runs, lifeRuns int, only string, out, log io.Writer) error {
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "denv-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{ctx: ctx, tmp: tmp, repo: repo, runs: runs, lifeRuns: lifeRuns, log: log}
	defer b.cleanup()
	if err := b.build(); err != nil {
		return err
	}
	parts := []struct {
		name string
		run  func()
	}{
		{"compile", b.compileVsLoader}, {"memory", b.peakMemory}, {"startup", b.startup}, {"defs", b.defs},
		{"lifecycle", b.lifecycle}, {"envs", b.envs}, {"clone", b.clone}, {"pull", b.pull},
		{"update", b.update},
	}
	for _, p := range parts {
		if only == "" || slices.Contains(strings.Split(only, ","), p.name) {
			p.run()
			// each part leaves the engine as it found it: the 20
			// environments of envs would otherwise hold 20 of the
			// engine's ~30 default network address pools during clone
			b.cleanup()
		}
	}
	b.print(out)
	return nil
}

// cleanup runs and forgets the cleanups registered so far, last first.
func (b *bench) cleanup() {
	for _, c := range slices.Backward(b.cleanups) {
		c()
	}
	b.cleanups = nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

// build compiles denv from this tree and the compose CLI in its own module
// directory (denv's go.sum lacks the CLI's dependencies).
func (b *bench) build() error {
	b.logf("building denv and docker-compose")
	b.denv = filepath.Join(b.tmp, "denv")
	b.compose = filepath.Join(b.tmp, "docker-compose")
	// static, as `make build` makes it: clone runs the binary in the engine
	build := exec.Command("go", "build", "-o", b.denv, "./cmd/denv")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building denv: %v: %s", err, firstLine(out))
	}
	modDir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/docker/compose/v5").Output()
	if err != nil {
		return fmt.Errorf("locating the compose module: %v", err)
	}
	cmd := exec.Command("go", "build", "-o", b.compose, "./cmd")
	cmd.Dir = strings.TrimSpace(string(modDir))
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building docker-compose: %v: %s", err, firstLine(out))
	}
	return nil
}

// result is one process run.
type result struct {
	wall   time.Duration
	maxRSS int64 // KiB
}

// run runs a command to completion with env added to the environment.
func (b *bench) run(env []string, dir string, name string, args ...string) (result, error) {
	cmd := exec.CommandContext(b.ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, lastLine(out.Bytes()))
	}
	r := result{wall: wall}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss
	}
	return r, nil
}

// pair times a and b alternately n times and returns the median of each.
func pair(n int, a, b func() (time.Duration, error)) (ma, mb time.Duration, err error) {
	var as, bs []time.Duration
	for i := range n {
		first, second := a, b
		if i%2 == 1 { // alternate who goes first: caches warm for both
			first, second = b, a
		}
		d1, err := first()
		if err != nil {
			return 0, 0, err
		}
		d2, err := second()
		if err != nil {
			return 0, 0, err
		}
		if i%2 == 1 {
			d1, d2 = d2, d1
		}
		as, bs = append(as, d1), append(bs, d2)
	}
	return median(as), median(bs), nil
}

func median[T time.Duration | float64](ds []T) T {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// proc returns a timing function for one command.
func (b *bench) proc(env []string, dir, name string, args ...string) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		r, err := b.run(env, dir, name, args...)
		return r.wall, err
	}
}

// compare adds a row for two medians against a target ratio (0: none).
func (b *bench) compare(what string, d time.Duration, peerName string, p time.Duration, target float64) {
	ratio := float64(d) / float64(p)
	r := row{what: what, denv: fmtDur(d), peerName: peerName, peer: fmtDur(p), ratio: fmt.Sprintf("%.2fx", ratio)}
	if target > 0 {
		r.target = fmt.Sprintf("<= %.2fx", target)
		r.met = yesNo(ratio <= target)
	}
	b.rows = append(b.rows, r)
}

func (b *bench) na(what, peerName, why string) {
	if len(why) > 160 {
		why = why[:160] + "..."
	}
	b.rows = append(b.rows, row{what: what, denv: "n/a (" + why + ")", peerName: peerName})
}

// compileVsLoader runs compile's own benchmarks: denv's whole compile
// (read, parse, resolve, compile, write YAML) against compose-go's loader
// on that YAML, both in-process, so the figures are the libraries' alone.
// The loader takes seconds at large sizes: 1,600 envs gets fewer runs.
func (b *bench) compileVsLoader() {
	b.logf("compile vs compose-go loader (go test -bench, ./compile)")
	sizes := []int{100, 400, 1600}
	what := func(n, runs int) string { return fmt.Sprintf("compile %d envs (%d runs)", n, runs) }
	testBin := filepath.Join(b.tmp, "compile.test")
	if out, err := exec.Command("go", "test", "-c", "-o", testBin, "./compile").CombinedOutput(); err != nil {
		for _, n := range sizes {
			b.na(what(n, 0), "compose-go loader", "building the compile benchmarks: "+firstLine(out))
		}
		return
	}
	// The sizes take turns within each run, so that a change in this
	// shared machine's load falls on all of them, and each run of compile
	// does the same work (1,600 environments' worth: 16 iterations at
	// 100, 4 at 400, 1 at 1,600, after an untimed one), so that no size
	// is timed over a few milliseconds only.
	compileRuns := max(b.runs, 3)
	times := map[int][]time.Duration{}
	failed := map[int]string{}
	for range compileRuns {
		for _, n := range sizes {
			if failed[n] != "" {
				continue
			}
			d, why := b.goBench(testBin, "Compile", n, max(1, 1600/n))
			if why != "" {
				failed[n] = why
				continue
			}
			times[n] = append(times[n], d)
		}
	}
	var prev time.Duration
	for _, n := range sizes {
		// the loader takes seconds at 400 (and fails at 1,600): 3 runs
		loaderRuns := 3
		var loads []time.Duration
		var lerr string
		for range loaderRuns {
			d, why := b.goBench(testBin, "Loader", n, 1)
			if why != "" {
				lerr = why
				break
			}
			loads = append(loads, d)
		}
		w := what(n, compileRuns)
		c := median(times[n])
		switch {
		case failed[n] != "":
			b.na(w, "compose-go loader", failed[n])
		case lerr != "":
			b.rows = append(b.rows, row{what: w, denv: fmtDur(c), peerName: "compose-go loader", peer: "fails: " + tail(lerr)})
		default:
			b.compare(w, c, "compose-go loader", median(loads), 0.10)
		}
		if failed[n] == "" && prev > 0 && len(times[n]) == len(times[n/4]) {
			// the median of each run's own ratio: the two sizes ran back
			// to back in it, so a change of load between runs cancels out
			ratios := make([]float64, len(times[n]))
			for i := range ratios {
				ratios[i] = float64(times[n][i]) / float64(times[n/4][i])
			}
			growth := median(ratios)
			b.rows = append(b.rows, row{
				what:     fmt.Sprintf("  growth %d -> %d envs", n/4, n),
				denv:     fmt.Sprintf("%.2fx time", growth),
				peerName: "4x the graph", ratio: fmt.Sprintf("%.2fx", growth), target: "<= 4.40x", met: yesNo(growth <= 4.4),
			})
		}
		prev = c
	}
	b.paramsOverhead(testBin, compileRuns)
}

// paramsOverhead compares compile of the 400-environment graph with a
// parameter passed on every include (graphgen.WriteParams) against the same
// graph without: the two take turns in each run, and the median of each
// run's own ratio is reported (target: within 1.10x).
func (b *bench) paramsOverhead(testBin string, runs int) {
	const n = 400
	what := fmt.Sprintf("compile %d envs, a parameter on every include (%d runs)", n, runs)
	var plain, params []time.Duration
	var ratios []float64
	for range runs {
		p, why := b.goBench(testBin, "Compile", n, 4)
		if why == "" {
			var q time.Duration
			if q, why = b.goBench(testBin, "CompileParams", n, 4); why == "" {
				plain, params = append(plain, p), append(params, q)
				ratios = append(ratios, float64(q)/float64(p))
				continue
			}
		}
		b.na(what, "without parameters", why)
		return
	}
	r := median(ratios)
	b.rows = append(b.rows, row{
		what: what, denv: fmtDur(median(params)), peerName: "without parameters", peer: fmtDur(median(plain)),
		ratio: fmt.Sprintf("%.2fx", r), target: "<= 1.10x", met: yesNo(r <= 1.10),
	})
}

// goBench runs Benchmark<name>/envs=<n> of the compile test binary once,
// iters iterations, and returns its ns/op, or why it failed.
func (b *bench) goBench(testBin, name string, n, iters int) (time.Duration, string) {
	cmd := exec.CommandContext(b.ctx, testBin, "-test.run", "^$",
		"-test.bench", fmt.Sprintf("^Benchmark%s$/^envs=%d$", name, n), "-test.benchtime", fmt.Sprintf("%dx", iters))
	cmd.Dir = filepath.Join(b.repo, "compile")
	out, err := cmd.CombinedOutput()
	if err != nil {
		// the benchmark's own message: "    bench_test.go:NN: why"
		for _, l := range strings.Split(string(out), "\n") {
			if _, msg, ok := strings.Cut(l, "_test.go:"); ok {
				_, msg, _ = strings.Cut(msg, ": ")
				return 0, msg
			}
		}
		return 0, firstLine(out)
	}
	ds := parseBench(out)[fmt.Sprintf("%s/envs=%d", name, n)]
	if len(ds) == 0 {
		return 0, "no result"
	}
	return ds[0], ""
}

// goBenchOnce runs the benchmark that matches pattern exactly (one name)
// of the test binary testBin, in dir, once with iters iterations, and
// returns its ns/op, or why it failed.
func (b *bench) goBenchOnce(testBin, dir, name string, iters int) (time.Duration, string) {
	cmd := exec.CommandContext(b.ctx, testBin, "-test.run", "^$",
		"-test.bench", "^Benchmark"+name+"$", "-test.benchtime", fmt.Sprintf("%dx", iters))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, firstLine(out)
	}
	ds := parseBench(out)[name]
	if len(ds) == 0 {
		return 0, "no result"
	}
	return ds[0], ""
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op`)

// parseBench reads `go test -bench` output: benchmark name -> ns/op values.
func parseBench(out []byte) map[string][]time.Duration {
	res := map[string][]time.Duration{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ns, err := strconv.ParseFloat(m[2], 64)
		if err == nil {
			res[m[1]] = append(res[m[1]], time.Duration(ns))
		}
	}
	return res
}

// peakMemory runs `denv compile` on the 1,600-environment graph as a child
// process and reads its peak RSS, beside `docker-compose config -q` on the
// output (compose's whole CLI on the same project).
func (b *bench) peakMemory() {
	b.logf("peak memory: denv compile of 1,600 envs vs docker-compose config -q")
	const what = "compile 1,600 envs: CLI, peak RSS"
	dir := filepath.Join(b.tmp, "g1600")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.na(what, "docker-compose config -q", err.Error())
		return
	}
	root, err := graphgen.Write(dir, 1600)
	if err != nil {
		b.na(what, "docker-compose config -q", err.Error())
		return
	}
	yaml := filepath.Join(dir, "compose.yaml")
	d, err := b.run(nil, dir, b.denv, "compile", "-o", yaml, root)
	if err != nil {
		b.na(what, "docker-compose config -q", err.Error())
		return
	}
	p, err := b.run(nil, dir, b.compose, "-f", yaml, "config", "-q")
	if err != nil {
		b.rows = append(b.rows, row{what: what, denv: fmt.Sprintf("%.0f MiB", float64(d.maxRSS)/1024),
			peerName: "docker-compose config -q", peer: "fails: " + tail(err.Error())})
		b.rows = append(b.rows, row{what: "compile 1,600 envs: CLI, wall (1 run)", denv: fmtDur(d.wall)})
		return
	}
	b.rows = append(b.rows, row{
		what: what, denv: fmt.Sprintf("%.0f MiB", float64(d.maxRSS)/1024),
		peerName: "docker-compose config -q", peer: fmt.Sprintf("%.0f MiB", float64(p.maxRSS)/1024),
		ratio: fmt.Sprintf("%.2fx", float64(d.maxRSS)/float64(p.maxRSS)),
	})
	b.compare(what[:len(what)-len(", peak RSS")]+", wall (1 run)", d.wall, "docker-compose config -q", p.wall, 0)
}

func (b *bench) startup() {
	b.logf("start-up: denv --version vs docker-compose version")
	d, p, err := pair(b.runs, b.proc(nil, b.tmp, b.denv, "--version"), b.proc(nil, b.tmp, b.compose, "version"))
	if err != nil {
		b.na("start-up: denv --version", "docker-compose version", err.Error())
		return
	}
	b.compare("start-up: denv --version", d, "docker-compose version", p, 0)
}

// hasCommand reports whether the denv binary has the subcommand name.
func (b *bench) hasCommand(name string) bool {
	out, err := exec.Command(b.denv, name, "--help").CombinedOutput()
	return err == nil && !bytes.Contains(out, []byte("unknown command"))
}

// ready reports whether a part can run: denv has every command and, when
// daemon is set, a Docker daemon answers. Otherwise it writes each row
// (what, peer) as n/a with the reason.
func (b *bench) ready(rows [][2]string, daemon bool, commands ...string) bool {
	why := ""
	for _, c := range commands {
		if !b.hasCommand(c) {
			why = "command missing"
			break
		}
	}
	if why == "" && daemon {
		why = b.daemon()
	}
	for _, r := range rows {
		if why != "" {
			b.na(r[0], r[1], why)
		}
	}
	return why == ""
}

// defs lists a store of 1,000 definitions.
func (b *bench) defs() {
	const what, peer = "denv defs, 1,000 stored", "docker-compose ls"
	if !b.ready([][2]string{{what, peer}}, false, "defs", "add") {
		return
	}
	b.logf("defs with 1,000 stored definitions vs docker-compose ls")
	dir := filepath.Join(b.tmp, "defs")
	home := []string{"DENV_HOME=" + filepath.Join(b.tmp, "defs-home")}
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.na(what, peer, err.Error())
		return
	}
	var files []string
	for i := range 1000 {
		name := fmt.Sprintf("def%04d.denv", i)
		if err := os.WriteFile(filepath.Join(dir, name), []byte("IMAGE ex/web\nEXPOSE web\n"), 0o644); err != nil {
			b.na(what, peer, err.Error())
			return
		}
		files = append(files, name)
	}
	if _, err := b.run(home, dir, b.denv, append([]string{"add"}, files...)...); err != nil {
		b.na(what, peer, err.Error())
		return
	}
	d, p, err := pair(b.runs, b.proc(home, dir, b.denv, "defs"), b.proc(nil, dir, b.compose, "ls"))
	if err != nil {
		b.na(what, peer, err.Error())
		return
	}
	b.compare(what, d, peer, p, 0)
}

// daemon reports why the Docker daemon cannot be used, or "".
func (b *bench) daemon() string {
	if _, err := b.run(nil, b.tmp, b.compose, "ls"); err != nil {
		return "no Docker daemon: " + err.Error()
	}
	return ""
}

// lifecycle runs, stops and removes the seed environment with denv and the
// same compiled project with docker-compose, alternating.
func (b *bench) lifecycle() {
	cmds := [][2]string{
		{"denv run (seed, 4 services)", "docker-compose up -d"},
		{"denv run (seed, 4 services)", "docker-compose up -d --wait"},
		{"denv stop", "docker-compose stop"},
		{"denv rm", "docker-compose down"},
	}
	if !b.ready(cmds, true, "run", "stop", "rm") {
		return
	}
	b.logf("run/stop/rm vs up -d/stop/down (%d runs)", b.lifeRuns)
	home := []string{"DENV_HOME=" + filepath.Join(b.tmp, "life-home")}
	seed := filepath.Join(b.repo, "examples", "expert-system-env.denv")
	yaml := filepath.Join(b.tmp, "seed.compose.yaml")
	if _, err := b.run(home, b.tmp, b.denv, "compile", "-o", yaml, seed); err != nil {
		b.na(cmds[0][0], cmds[0][1], err.Error())
		return
	}
	var runT, upT, upWaitT, stopT, cstopT, rmT, downT []time.Duration
	for i := range b.lifeRuns {
		id := fmt.Sprintf("denvbench-%d", i)
		cid, wid := id+"-c", id+"-w"
		for _, p := range []string{id, cid, wid} {
			b.cleanups = append(b.cleanups, func() { b.run(nil, b.tmp, b.compose, "-p", p, "down", "-v", "-t", "1") })
		}
		steps := []struct {
			into *[]time.Duration
			name string
			args []string
			env  []string
		}{
			{&runT, b.denv, []string{"run", seed, "-n", id}, home},
			{&upT, b.compose, []string{"-p", cid, "-f", yaml, "up", "-d"}, nil},
			{&upWaitT, b.compose, []string{"-p", wid, "-f", yaml, "up", "-d", "--wait"}, nil},
			{&stopT, b.denv, []string{"stop", id}, home},
			{&cstopT, b.compose, []string{"-p", cid, "stop"}, nil},
			{&rmT, b.denv, []string{"rm", id}, home},
			{&downT, b.compose, []string{"-p", cid, "down"}, nil},
		}
		for _, s := range steps {
			r, err := b.run(s.env, b.tmp, s.name, s.args...)
			if err != nil {
				b.na(cmds[0][0], cmds[0][1], err.Error())
				return
			}
			*s.into = append(*s.into, r.wall)
		}
		// volumes kept by rm and down, and the --wait project
		for _, p := range []string{id, cid, wid} {
			b.run(nil, b.tmp, b.compose, "-p", p, "down", "-v", "-t", "1")
		}
	}
	// The seed declares READY, so denv run waits for its services to be
	// healthy, as `up -d --wait` does: that is the comparison with a
	// target (issue 14: <= 1.05x); `up -d` returns before readiness.
	b.compare(cmds[0][0], median(runT), cmds[0][1], median(upT), 0)
	b.compare(cmds[1][0], median(runT), cmds[1][1], median(upWaitT), 1.05)
	b.compare(cmds[2][0], median(stopT), cmds[2][1], median(cstopT), 0)
	b.compare(cmds[3][0], median(rmT), cmds[3][1], median(downT), 0)
}

// envs lists 20 running environments (one service each).
func (b *bench) envs() {
	const what, peer = "denv envs, 20 environments", "docker-compose ls"
	if !b.ready([][2]string{{what, peer}}, true, "envs", "run") {
		return
	}
	b.logf("envs with 20 environments vs docker-compose ls")
	home := []string{"DENV_HOME=" + filepath.Join(b.tmp, "envs-home")}
	def := filepath.Join(b.tmp, "one.denv")
	if err := os.WriteFile(def, []byte("IMAGE ex/web\nEXPOSE web\n"), 0o644); err != nil {
		b.na(what, peer, err.Error())
		return
	}
	for i := range 20 {
		id := fmt.Sprintf("denvbench-envs-%d", i)
		b.cleanups = append(b.cleanups, func() { b.run(nil, b.tmp, b.compose, "-p", id, "down", "-v", "-t", "1") })
		if _, err := b.run(home, b.tmp, b.denv, "run", def, "-n", id); err != nil {
			b.na(what, peer, err.Error())
			return
		}
	}
	d, p, err := pair(b.runs, b.proc(home, b.tmp, b.denv, "envs"), b.proc(nil, b.tmp, b.compose, "ls"))
	if err != nil {
		b.na(what, peer, err.Error())
		return
	}
	b.compare(what, d, peer, p, 1.0)
}

// clone copies an environment whose volume holds 1 GiB (16 values of 64
// MiB stored through ex/db) with `denv clone --no-start`, against `cp -a`
// of that volume's directory on the host (needs root to read it).
func (b *bench) clone() {
	const what, peer = "denv clone --no-start, 1 GiB volume", "cp -a of the volume dir"
	if !b.ready([][2]string{{what, peer}}, true, "clone", "run") {
		return
	}
	b.logf("clone of a 1 GiB volume vs cp -a (%d runs)", b.lifeRuns)
	home := []string{"DENV_HOME=" + filepath.Join(b.tmp, "clone-home")}
	def := filepath.Join(b.tmp, "store.denv")
	if err := os.WriteFile(def, []byte("IMAGE ex/db VOLUME data:/data\nEXPOSE db\n"), 0o644); err != nil {
		b.na(what, peer, err.Error())
		return
	}
	id := "denvbench-clone"
	b.cleanups = append(b.cleanups, func() { b.run(nil, b.tmp, b.compose, "-p", id, "down", "-v", "-t", "1") })
	out, err := b.output(home, b.denv, "run", def, "-n", id)
	if err != nil {
		b.na(what, peer, err.Error())
		return
	}
	url := regexp.MustCompile(`http://\S+`).FindString(out)
	if url == "" {
		b.na(what, peer, "no endpoint in: "+firstLine([]byte(out)))
		return
	}
	chunk := bytes.Repeat([]byte("denv-bench-0123456789abcdef\n"), (64<<20)/28+1)[:64<<20]
	for i := range 16 {
		req, _ := http.NewRequestWithContext(b.ctx, http.MethodPut, fmt.Sprintf("%s/kv/blob%d", url, i), bytes.NewReader(chunk))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.na(what, peer, err.Error())
			return
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			b.na(what, peer, "storing 64 MiB: "+resp.Status)
			return
		}
	}
	src, err := b.output(nil, "docker", "volume", "inspect", "-f", "{{.Mountpoint}}", id+"_data")
	if err != nil {
		b.na(what, peer, err.Error())
		return
	}
	src = strings.TrimSpace(src)
	var cloneT, cpT []time.Duration
	prepare := func() {
		b.run(nil, b.tmp, "sync")
		warmMemory(2 << 30)
	}
	for i := range b.lifeRuns {
		cid := fmt.Sprintf("%s-%d", id, i)
		b.cleanups = append(b.cleanups, func() { b.run(nil, b.tmp, b.compose, "-p", cid, "down", "-v", "-t", "1") })
		// Each side starts with no dirty pages and warm memory (untimed
		// prepare): on this ext4 disk a copy that starts behind another's
		// gigabyte of writeback ran up to 8x slower than one that did not,
		// and see warmMemory. Each copy is deleted once timed.
		prepare()
		r, err := b.run(home, b.tmp, b.denv, "clone", id, "-n", cid, "--no-start")
		if err != nil {
			b.na(what, peer, err.Error())
			return
		}
		cloneT = append(cloneT, r.wall)
		// denv rm waits for the copier to be gone; compose's down would
		// leave the volume while it still mounts it
		b.run(home, b.tmp, b.denv, "rm", cid, "--volumes")
		dst := filepath.Join(b.tmp, fmt.Sprintf("cp-%d", i))
		prepare()
		r, err = b.run(nil, b.tmp, "cp", "-a", src, dst)
		if err != nil {
			b.na(what, peer, err.Error())
			return
		}
		cpT = append(cpT, r.wall)
		os.RemoveAll(dst)
	}
	b.compare(what, median(cloneT), peer, median(cpT), 1.5)
}

// warmMemory touches n bytes of fresh memory and gives them back to the
// kernel, for the copy that follows to fill. In a VM whose balloon takes
// back the guest's free pages (virtio-balloon free page reporting, as on
// the machine of docs/PERFORMANCE.md), the first touch of such a page
// faults into the hypervisor: a 1 GiB `cp -a` into page cache took
// 0.33 s to 3.5 s depending on how much of its memory the guest had
// touched lately, whichever tool copied.
func warmMemory(n int) {
	buf := make([]byte, n)
	for i := 0; i < len(buf); i += os.Getpagesize() {
		buf[i] = 1
	}
	runtime.KeepAlive(buf)
	buf = nil
	runtime.GC()
	debug.FreeOSMemory()
}

// output runs a command and returns its standard output.
func (b *bench) output(env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(b.ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = b.tmp
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, firstLine(stderr.Bytes()))
	}
	return string(out), nil
}

func (b *bench) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tdenv\tpeer\tpeer's figure\tratio\ttarget\tmet")
	for _, r := range b.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.what, r.denv, r.peerName, r.peer, r.ratio, r.target, r.met)
	}
	tw.Flush()
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// tail shortens a peer's error to its end, where the reason is.
func tail(s string) string {
	if len(s) > 70 {
		return "..." + s[len(s)-70:]
	}
	return s
}

// lastLine is where a command prints its error, after any progress.
func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return "no output"
	}
	return s
}
