package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// pullRegistry is the private registry of scripts/registry-up.sh.
const (
	pullRegistry = "127.0.0.1:5000"
	pullAuth     = "denv:denv-test-only"
)

// pull measures a first run whose images are only in the local registry:
// `denv run` of the seed with every image taken from 127.0.0.1:5000 (the
// root exposing expert-system without PORT, so denv pulls before reading
// its EXPOSE ports) against `docker-compose up -d` of the same compiled
// project, alternating, each side starting with the registry tags removed
// and both logged in through one DOCKER_CONFIG. The demo images ex/* stay
// (other work uses them), so their layers are present: each pull fetches
// the manifests and finds the layers there, as on a machine that has
// pulled an earlier tag.
func (b *bench) pull() {
	what := [][2]string{{"denv run, seed pulled from the local registry", "docker-compose up -d --wait (pulling)"}}
	if !b.ready(what, true, "run", "compile") {
		return
	}
	na := func(err error) { b.na(what[0][0], what[0][1], err.Error()) }
	if _, err := b.run(nil, b.repo, filepath.Join(b.repo, "scripts", "registry-up.sh")); err != nil {
		na(err)
		return
	}
	b.logf("first run pulling from %s vs docker-compose up -d --wait (%d runs)", pullRegistry, b.lifeRuns)
	dir := filepath.Join(b.tmp, "pull")
	cfgDir := filepath.Join(dir, "docker-config")
	if err := os.MkdirAll(filepath.Join(dir, "ex"), 0o755); err != nil {
		na(err)
		return
	}
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		na(err)
		return
	}
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, pullRegistry, base64.StdEncoding.EncodeToString([]byte(pullAuth)))
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
		na(err)
		return
	}
	env := []string{"DOCKER_CONFIG=" + cfgDir}
	tag := fmt.Sprintf("bench%d", time.Now().UnixNano())
	var refs []string
	for _, img := range []string{"ex/web", "ex/db", "ex/worker", "ex/expert-system"} {
		ref := pullRegistry + "/" + img + ":" + tag
		refs = append(refs, ref)
		b.cleanups = append(b.cleanups, func() { b.run(env, b.tmp, "docker", "rmi", "-f", ref) })
		for _, args := range [][]string{{"tag", img, ref}, {"push", "-q", ref}} {
			if _, err := b.run(env, b.tmp, "docker", args...); err != nil {
				na(err)
				return
			}
		}
	}
	untag := func() error {
		_, err := b.run(env, b.tmp, "docker", append([]string{"rmi", "-f"}, refs...)...)
		return err
	}
	image := regexp.MustCompile(`\b(IMAGE|EXPOSE) ex/(web|db|worker|expert-system)\b`)
	for _, rel := range []string{"expert-system-env.denv", "ex/web-env.denv", "ex/worker-env.denv"} {
		src, err := os.ReadFile(filepath.Join(b.repo, "examples", rel))
		if err != nil {
			na(err)
			return
		}
		out := image.ReplaceAllString(string(src), "$1 "+pullRegistry+"/ex/$2:"+tag)
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(out), 0o644); err != nil {
			na(err)
			return
		}
	}
	seed := filepath.Join(dir, "expert-system-env.denv")
	yaml := filepath.Join(dir, "seed.compose.yaml")
	home := append([]string{"DENV_HOME=" + filepath.Join(b.tmp, "pull-home")}, env...)
	if _, err := b.run(home, b.tmp, b.denv, "compile", "-o", yaml, seed); err != nil {
		na(err)
		return
	}
	var runT, upT []time.Duration
	for i := range b.lifeRuns {
		id, cid := fmt.Sprintf("denvbench-pull-%d", i), fmt.Sprintf("denvbench-pull-%d-c", i)
		for _, p := range []string{id, cid} {
			b.cleanups = append(b.cleanups, func() { b.run(nil, b.tmp, b.compose, "-p", p, "down", "-v", "-t", "1") })
		}
		sides := []func() error{
			func() error {
				if err := untag(); err != nil {
					return err
				}
				r, err := b.run(home, b.tmp, b.denv, "run", seed, "-n", id)
				runT = append(runT, r.wall)
				return err
			},
			func() error {
				if err := untag(); err != nil {
					return err
				}
				r, err := b.run(env, b.tmp, b.compose, "-p", cid, "-f", yaml, "up", "-d", "--wait")
				upT = append(upT, r.wall)
				return err
			},
		}
		if i%2 == 1 { // alternate who goes first
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, s := range sides {
			if err := s(); err != nil {
				na(err)
				return
			}
		}
		for _, p := range []string{id, cid} {
			b.run(nil, b.tmp, b.compose, "-p", p, "down", "-v", "-t", "1")
		}
	}
	b.compare(what[0][0], median(runT), what[0][1], median(upT), 1.05)
}
