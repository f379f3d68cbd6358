// Package compile turns a resolved environment graph into one compose-spec
// project. It is pure: no Docker, no network, no file system.
//
// Naming (LANGUAGE.md section 5): a service S of the root keeps its name; a
// service S of an included environment E is "E-S". The root's network is
// "default"; E's is "E". A named volume V of the root is "V"; of E, "E-V".
package compile

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/diag"
	"github.com/alebellu/denv/resolve"
)

// Labels set on every service, saying where it came from.
const (
	LabelDefinition  = "denv.definition"  // the definition's name
	LabelEnvironment = "denv.environment" // the environment instance's name
	LabelSource      = "denv.source"      // file:line of the IMAGE statement
	// LabelPublishImagePorts marks a service exposed by the root that has no
	// PORT clause: the runtime publishes the ports its image declares.
	LabelPublishImagePorts = "denv.publish-image-ports"
	// LabelParamPrefix + NAME records the value of parameter NAME the
	// service's environment was compiled with ("***" for a secret one,
	// see resolve.Secret; the service's own settings hold the real value).
	LabelParamPrefix = "denv.param."
	// LabelReadyWithin is set on a service with READY: its limit, in
	// seconds ("60s"), as time.ParseDuration reads it. The healthcheck
	// turns unhealthy a little after it (see ReadyRetries); the runtime
	// can enforce it exactly.
	LabelReadyWithin = "denv.ready-within"
	// LabelWaitImageHealth is set on a service that LINKs services without
	// READY: their compose names, sorted, comma-separated. Compile cannot
	// inspect images, so their depends_on stays service_started; the
	// runtime upgrades each to service_healthy when its image declares a
	// HEALTHCHECK (LANGUAGE.md section 8).
	LabelWaitImageHealth = "denv.wait-image-health"
)

// The healthcheck a READY clause becomes. The engine runs the check
// ReadyInterval after the previous one ended, so readiness is seen within
// ReadyInterval plus the check's own run time. A success makes the
// service healthy at any time; failures count only after the start
// period, and ReadyRetries of them in a row make it unhealthy. The start
// period is WITHIN less ReadyRetries*ReadyInterval (at least 0), so a
// service never ready turns unhealthy at about its limit: later by the
// run time of its last checks (up to ReadyTimeout each when they hang),
// and by up to ReadyRetries*ReadyInterval for limits under 2s. Engine
// API 1.41 (Docker 20.10) accepts any duration from 1ms; start_interval
// (API 1.44) is not used, so the short interval holds for the
// container's whole life.
const (
	ReadyInterval = 500 * time.Millisecond
	ReadyTimeout  = 2 * time.Second
	ReadyRetries  = 3
)

// Options configure Compile.
type Options struct {
	// Name is the compose project name; empty means the root environment's.
	Name string
	// BaseDir is the directory bind mount sources are written relative to
	// (the working directory); empty keeps them absolute.
	BaseDir string
}

// projectName is compose's rule for project names.
var projectName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Compile builds the compose project of g.
func Compile(g *resolve.Graph, opts Options) (*types.Project, error) {
	name := opts.Name
	if name == "" {
		name = strings.ReplaceAll(g.Root.Name, ".", "-")
	}
	if !projectName.MatchString(name) {
		return nil, fmt.Errorf("invalid project name %q: use lowercase letters, digits, '_' and '-', starting with a letter or digit", name)
	}
	c := &compiler{
		g:        g,
		opts:     opts,
		owner:    map[string]*resolve.Service{},
		clashed:  map[string]bool{},
		aliasOf:  map[string]map[string]*resolve.Service{},
		services: types.Services{},
		networks: types.Networks{},
		volumes:  types.Volumes{},

		paramLabel: map[string]string{},
	}
	for _, env := range g.Envs {
		c.networks[c.network(env)] = types.NetworkConfig{}
		for _, svc := range env.Services {
			c.service(svc)
		}
	}
	c.interfaces()
	c.sortAliases()
	if err := c.diags.Err(); err != nil {
		return nil, err
	}
	return &types.Project{Name: name, Services: c.services, Networks: c.networks, Volumes: c.volumes}, nil
}

type compiler struct {
	g        *resolve.Graph
	opts     Options
	diags    diag.List
	owner    map[string]*resolve.Service            // compose service name -> service
	clashed  map[string]bool                        // compose names already reported
	aliasOf  map[string]map[string]*resolve.Service // network -> alias -> service
	services types.Services
	networks types.Networks
	volumes  types.Volumes
	// paramLabel holds the label key of each parameter name
	paramLabel map[string]string
}

// ServiceName is the compose name of svc.
func ServiceName(g *resolve.Graph, svc *resolve.Service) string {
	if svc.Env == g.Root {
		return svc.Name
	}
	return svc.Env.Name + "-" + svc.Name
}

func (c *compiler) name(svc *resolve.Service) string { return ServiceName(c.g, svc) }

func (c *compiler) network(env *resolve.Env) string {
	if env == c.g.Root {
		return "default"
	}
	return env.Name
}

func (c *compiler) volumeName(env *resolve.Env, v string) string {
	if env == c.g.Root {
		return v
	}
	return env.Name + "-" + v
}

func (c *compiler) service(svc *resolve.Service) {
	name := c.name(svc)
	if prev, ok := c.owner[name]; ok {
		c.diags = append(c.diags, diag.Errorf(svc.Pos, "service %q of %s and service %q of %s both compile to %q; rename one with AS",
			svc.Name, svc.Env.Name, prev.Name, prev.Env.Name, name))
		c.clashed[name] = true
		return
	}
	c.owner[name] = svc
	env := svc.Env
	sc := types.ServiceConfig{Name: name}
	sc.Image = svc.Image
	sc.Labels = types.Labels{
		LabelDefinition:  env.Def,
		LabelEnvironment: env.Name,
		LabelSource:      svc.Pos.Short(),
	}
	for _, p := range env.Params {
		key, ok := c.paramLabel[p.Name]
		if !ok {
			key = LabelParamPrefix + p.Name // once per name, not per service
			c.paramLabel[p.Name] = key
		}
		sc.Labels[key] = p.Shown()
	}
	sc.Networks = map[string]*types.ServiceNetworkConfig{}
	net := c.network(env)
	sc.Networks[net] = &types.ServiceNetworkConfig{}
	if env != c.g.Root {
		c.alias(sc.Networks, name, net, svc.Name, svc)
	}
	if len(svc.Environ) > 0 {
		sc.Environment = types.MappingWithEquals{}
		for _, e := range svc.Environ {
			sc.Environment[e.Key] = &e.Value
		}
	}
	if svc.Command != nil {
		sc.Command = types.ShellCommand(svc.Command)
	}
	if r := svc.Ready; r != nil {
		sc.HealthCheck = healthcheck(r)
		sc.Labels[LabelReadyWithin] = seconds(r.Within)
	}
	var waitImage []string
	for _, l := range svc.Links {
		var deps []*resolve.Service
		if l.Service != nil {
			deps = append(deps, l.Service)
		} else {
			for _, x := range l.Env.Exposed {
				deps = append(deps, x.Service)
			}
		}
		for _, d := range deps {
			if sc.DependsOn == nil {
				sc.DependsOn = types.DependsOnConfig{}
			}
			cond := types.ServiceConditionHealthy
			if d.Ready == nil {
				cond = types.ServiceConditionStarted
				if !slices.Contains(waitImage, c.name(d)) {
					waitImage = append(waitImage, c.name(d))
				}
			}
			sc.DependsOn[c.name(d)] = types.ServiceDependency{Condition: cond, Required: true}
		}
	}
	if len(waitImage) > 0 {
		slices.Sort(waitImage)
		sc.Labels[LabelWaitImageHealth] = strings.Join(waitImage, ",")
	}
	published := env == c.g.Root && slices.ContainsFunc(env.Exposed, func(x resolve.Exposed) bool { return x.Service == svc })
	for _, p := range svc.Ports {
		if !published {
			sc.Expose = append(sc.Expose, portString(p.Container, p.Protocol))
			continue
		}
		pc := types.ServicePortConfig{Mode: "ingress", Target: uint32(p.Container), Protocol: p.Protocol}
		if p.Host != 0 {
			pc.Published = strconv.Itoa(int(p.Host))
		}
		sc.Ports = append(sc.Ports, pc)
	}
	for _, v := range svc.Volumes {
		vc := types.ServiceVolumeConfig{Target: v.Target, ReadOnly: v.ReadOnly}
		if v.Kind == resolve.BindMount {
			vc.Type = types.VolumeTypeBind
			vc.Source = c.hostPath(v.Source)
			vc.Bind = &types.ServiceVolumeBind{CreateHostPath: true}
		} else {
			vc.Type = types.VolumeTypeVolume
			vc.Source = c.volumeName(env, v.Name)
			c.volumes[vc.Source] = types.VolumeConfig{Labels: types.Labels{LabelEnvironment: env.Name}}
		}
		sc.Volumes = append(sc.Volumes, vc)
	}
	c.services[name] = sc
}

// healthcheck is the compose healthcheck of a READY clause.
func healthcheck(r *resolve.Ready) *types.HealthCheckConfig {
	interval, timeout := types.Duration(ReadyInterval), types.Duration(ReadyTimeout)
	start := types.Duration(max(0, r.Within-ReadyRetries*ReadyInterval))
	retries := uint64(ReadyRetries)
	return &types.HealthCheckConfig{
		Test:        append(types.HealthCheckTest{"CMD"}, r.Command...),
		Interval:    &interval,
		Timeout:     &timeout,
		Retries:     &retries,
		StartPeriod: &start,
	}
}

// seconds writes a whole number of seconds as "60s".
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// publishesImagePorts marks root-exposed services without PORT clauses.
func (c *compiler) markImagePorts() {
	for _, x := range c.g.Root.Exposed {
		if len(x.Service.Ports) > 0 {
			continue
		}
		name := c.name(x.Service)
		// Labels is a map: set through a copy, without copying the
		// 1.4 KB ServiceConfig out of c.services and back
		if labels := c.services[name].Labels; labels != nil {
			labels[LabelPublishImagePorts] = "true"
		}
	}
}

// interfaces joins every exposed service of an environment E to the network
// of each environment that includes E, as "E-x" and, when E exposes exactly
// one service, as "E".
func (c *compiler) interfaces() {
	c.markImagePorts()
	for _, env := range c.g.Envs {
		for _, inc := range env.IncludedBy {
			net := c.network(inc)
			for _, x := range env.Exposed {
				// the networks map, not a copy of the whole service
				name := c.name(x.Service)
				nets := c.services[name].Networks
				if nets == nil {
					continue
				}
				c.alias(nets, name, net, env.Name+"-"+x.Name, x.Service)
				if len(env.Exposed) == 1 {
					c.alias(nets, name, net, env.Name, x.Service)
				}
			}
		}
	}
}

// alias puts the service named name, whose networks are nets, on network
// net under alias a, refusing two services with one name on one network.
func (c *compiler) alias(nets map[string]*types.ServiceNetworkConfig, name, net, a string, svc *resolve.Service) {
	if c.aliasOf[net] == nil {
		c.aliasOf[net] = map[string]*resolve.Service{}
	}
	if prev, ok := c.aliasOf[net][a]; ok && prev != svc {
		c.diags = append(c.diags, diag.Errorf(svc.Pos, "name %q would mean two services on network %q: %s (%s) and %s (%s); rename one with AS",
			a, net, c.name(prev), prev.Pos.Short(), c.name(svc), svc.Pos.Short()))
		return
	}
	c.aliasOf[net][a] = svc
	nc := nets[net]
	if nc == nil {
		nc = &types.ServiceNetworkConfig{}
		nets[net] = nc
	}
	if a != name && !slices.Contains(nc.Aliases, a) {
		nc.Aliases = append(nc.Aliases, a)
	}
}

// sortAliases makes alias lists independent of the order they were added
// and checks that no alias collides with a compose service name on the
// same network.
func (c *compiler) sortAliases() {
	for _, sc := range c.services {
		for net, nc := range sc.Networks {
			slices.Sort(nc.Aliases)
			if prev, ok := c.aliasOf[net][sc.Name]; ok && prev != c.owner[sc.Name] && !c.clashed[sc.Name] {
				svc := c.owner[sc.Name]
				c.diags = append(c.diags, diag.Errorf(svc.Pos, "service %q clashes with the name %q of %s on network %q; rename one with AS",
					sc.Name, sc.Name, prev.Pos.Short(), net))
			}
		}
	}
}

// hostPath writes a bind source relative to the base directory when it is
// inside it.
func (c *compiler) hostPath(p string) string {
	if c.opts.BaseDir == "" {
		return p
	}
	rel, err := filepath.Rel(c.opts.BaseDir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return p
	}
	return "./" + filepath.ToSlash(rel)
}

func portString(port uint16, proto string) string {
	if proto == "tcp" {
		return strconv.Itoa(int(port))
	}
	return fmt.Sprintf("%d/%s", port, proto)
}
