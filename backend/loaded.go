package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/compose-spec/compose-go/v2/types"
)

// loadedFormat names the encoding of [EncodeLoaded]; change it whenever
// [Load] changes what it does after compose-go's loader (the labels it
// moves or adds), so that a cache written by another denv is not used.
const loadedFormat = "denv-loaded-1"

// composeGoModule is compose-go's module path, whose version is part of
// the cache's key: another loader may normalise differently.
const composeGoModule = "github.com/compose-spec/compose-go/v2"

// loadedCache is the encoding of [EncodeLoaded].
type loadedCache struct {
	Format string `json:"format"`
	// Loader is compose-go's module version.
	Loader string `json:"loader"`
	// Digest is the sha256 of the YAML the project was loaded from.
	Digest     string `json:"digest"`
	Name       string `json:"name"`
	WorkingDir string `json:"working_dir"`
	// Env are the process environment variables the loaded project may
	// depend on: those of a service's environment whose value was left
	// to the process environment (YAML null), with the value they had
	// (nil: unset). A different value now makes the cache unusable.
	Env map[string]*string `json:"env,omitempty"`
	// Project is the loaded project in compose's JSON encoding, which
	// leaves out the services' CustomLabels (compose's and denv's
	// descriptive labels, see Load): they are here, by service.
	Project json.RawMessage              `json:"project"`
	Custom  map[string]map[string]string `json:"custom_labels,omitempty"`
}

// EncodeLoaded encodes p, which [Load] returned for yaml, so that
// [LoadDeployment] can restore it later without compose-go's loader (whose
// cost is seconds on a graph of thousands of services). It returns nil
// when p carries what compose's JSON encoding drops (x- extensions).
//
// The restored project is meant for planning (plan.Compute: every
// compose.ServiceHash and field the plan reads is that of the loaded
// project, TestLoadedRoundTrip), not for deploying: an engine deploys a
// project loaded by the loader.
func EncodeLoaded(p *types.Project, yaml []byte) []byte {
	if len(p.Extensions) > 0 {
		return nil
	}
	env := map[string]*string{}
	custom := map[string]map[string]string{}
	for name, s := range p.Services {
		custom[name] = s.CustomLabels
		if len(s.Extensions) > 0 {
			return nil
		}
		for k, v := range s.Environment {
			// A null value was not found in the process environment;
			// a value equal to the process's may have come from it.
			// Both are kept: an extra key only makes the cache miss.
			if pv, ok := os.LookupEnv(k); !ok && v == nil {
				env[k] = nil
			} else if ok && v != nil && *v == pv {
				env[k] = &pv
			}
		}
	}
	for _, n := range p.Networks {
		if len(n.Extensions) > 0 {
			return nil
		}
	}
	for _, v := range p.Volumes {
		if len(v.Extensions) > 0 {
			return nil
		}
	}
	project, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	data, err := json.Marshal(loadedCache{
		Format: loadedFormat, Loader: loaderVersion(), Digest: yamlDigest(yaml),
		Name: p.Name, WorkingDir: p.WorkingDir, Env: env, Project: project, Custom: custom,
	})
	if err != nil {
		return nil
	}
	return data
}

// LoadDeployment returns d's project as [Load] does. When d.Loaded is an
// [EncodeLoaded] of that very project (same YAML, name, working directory,
// loader, and process environment where the project reads it), the
// project is restored from it instead, and cached is true: for planning
// only (see EncodeLoaded).
func LoadDeployment(ctx context.Context, d Deployment) (p *types.Project, cached bool, err error) {
	if p := restoreLoaded(d); p != nil {
		return p, true, nil
	}
	p, err = Load(ctx, d.Project, d.ID, d.WorkDir)
	return p, false, err
}

// LoadPlanned returns the projects of old and new for a plan, each as
// [LoadDeployment] gives it (new may be restored from old.Loaded too).
// When new's YAML is old's (same ID and working directory), new's project
// is old's itself (np == op): plan.Compute modifies neither. newLoaded
// reports whether np came from compose-go's loader, and so may be
// deployed.
func LoadPlanned(ctx context.Context, old, new Deployment) (op, np *types.Project, newLoaded bool, err error) {
	op, cached, err := LoadDeployment(ctx, old)
	if err != nil {
		return nil, nil, false, err
	}
	if new.ID == old.ID && new.WorkDir == old.WorkDir && string(new.Project) == string(old.Project) {
		return op, op, !cached, nil
	}
	if len(new.Loaded) == 0 {
		new.Loaded = old.Loaded
	}
	np, cached, err = LoadDeployment(ctx, new)
	return op, np, !cached && err == nil, err
}

// restoreLoaded decodes d.Loaded when it matches d, else returns nil.
func restoreLoaded(d Deployment) *types.Project {
	if len(d.Loaded) == 0 {
		return nil
	}
	var c loadedCache
	if json.Unmarshal(d.Loaded, &c) != nil || c.Format != loadedFormat || c.Loader != loaderVersion() ||
		c.Digest != yamlDigest(d.Project) || c.Name != d.ID || d.WorkDir == "" || c.WorkingDir != d.WorkDir {
		return nil
	}
	for k, v := range c.Env {
		pv, ok := os.LookupEnv(k)
		if ok != (v != nil) || ok && pv != *v {
			return nil
		}
	}
	var p types.Project
	if json.Unmarshal(c.Project, &p) != nil || restoreOptOut(c.Project, &p) != nil {
		return nil
	}
	// What compose's encoding leaves out, as Load sets it.
	p.WorkingDir = c.WorkingDir
	p.ComposeFiles = []string{filepath.Join(c.WorkingDir, ComposeFileName)}
	p.Environment = loaderEnv(c.WorkingDir)
	for name, s := range p.Services {
		s.Name = name
		s.CustomLabels = c.Custom[name]
		p.Services[name] = s
	}
	return &p
}

// optOuts is what restoreOptOut reads of compose's JSON encoding of a
// project: the types.OptOut fields (booleans true by default), which the
// encoding omits when true.
type optOuts struct {
	Services map[string]struct {
		Volumes []struct {
			Bind *struct {
				CreateHostPath *bool `json:"create_host_path"`
			} `json:"bind"`
		} `json:"volumes"`
		EnvFiles []struct {
			Required *bool `json:"required"`
		} `json:"env_file"`
	} `json:"services"`
}

// restoreOptOut sets the types.OptOut fields of p, decoded from data,
// that the encoding omitted: they were true (encoding/json decodes an
// omitted field as false).
func restoreOptOut(data []byte, p *types.Project) error {
	var o optOuts
	if err := json.Unmarshal(data, &o); err != nil {
		return err
	}
	for name, so := range o.Services {
		s := p.Services[name]
		if len(so.Volumes) != len(s.Volumes) || len(so.EnvFiles) != len(s.EnvFiles) {
			return fmt.Errorf("service %s: volumes or env files out of step", name)
		}
		for i, v := range so.Volumes {
			if v.Bind != nil && v.Bind.CreateHostPath == nil {
				s.Volumes[i].Bind.CreateHostPath = true
			}
		}
		for i, f := range so.EnvFiles {
			if f.Required == nil {
				s.EnvFiles[i].Required = true
			}
		}
	}
	return nil
}

// yamlDigest is the sha256 of a project's YAML.
func yamlDigest(yaml []byte) string {
	sum := sha256.Sum256(yaml)
	return hex.EncodeToString(sum[:])
}

// loaderVersion is compose-go's module version in this binary.
func loaderVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == composeGoModule {
				if dep.Replace != nil {
					dep = dep.Replace
				}
				return dep.Version
			}
		}
	}
	return "unknown"
}
