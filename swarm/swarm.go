// Package swarm is the Docker Swarm target of the compile stage: it turns
// the compose project that compile.Compile builds into a stack file for
// `docker stack deploy`, as the Docker CLI's own compose types
// (github.com/docker/cli/cli/compose/types), so that the CLI's stack code
// can deploy it directly. It is pure: no Docker, no network.
//
// What changes from the compose project, and why:
//
//   - Each environment's network is an attachable overlay network, so that
//     services on several nodes share it (and one-off containers can join it
//     for debugging). Aliases stay: swarm resolves network aliases the way
//     compose does, so naming and encapsulation are the same.
//   - depends_on and container_name are dropped: swarm ignores them. Start
//     order is replaced by restarts: every service has
//     deploy.restart_policy condition "any", so a task that exits because a
//     service it needs is not up yet is started again (the demo programs
//     also retry on their own). READY becomes the service's healthcheck,
//     unchanged: swarm keeps a task in "starting" until its check passes
//     and replaces a task that turns unhealthy, so a service never ready
//     is restarted about every WITHIN. A dependent may still start first.
//   - Each service gets deploy: one replica, and the denv labels as service
//     labels too (the container labels stay), so `docker service ls` and
//     the stack code can find where a service came from.
//   - Published ports are in ingress mode (the routing mesh) by default. A
//     port whose host side was left open gets a port chosen by swarm.
//     Options.PublishMode "host" publishes them on the node that runs the
//     task instead, for engines whose kernel lacks IPVS (the routing mesh
//     and virtual IPs need it).
//   - A service without ingress ports has endpoint_mode dnsrr: its name
//     resolves to its task's address, as a compose service name resolves to
//     its container's (one replica: no load balancing is lost), and no
//     IPVS virtual IP is needed. Ingress ports require a virtual IP, so a
//     service that has them keeps the default (vip).
//   - A bind mount names an absolute host path, which must exist on the
//     node a task lands on: a relative source (compile writes those inside
//     its base directory as ./dir) is made absolute with Options.WorkDir,
//     and is an error without one (a stack has no working directory).
//   - A service exposed by the root without PORT keeps its
//     denv.publish-image-ports label: the runtime publishes its image's
//     EXPOSE ports, as it does locally.
package swarm

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	clitypes "github.com/docker/cli/cli/compose/types"
	"go.yaml.in/yaml/v3"

	"github.com/alebellu/denv/compile"
)

// Version is the stack file format version written.
const Version = "3.9"

// RestartDelay is how long swarm waits before restarting a failed task.
const RestartDelay = 2 * time.Second

// Options configure Stack.
type Options struct {
	// PublishMode is "ingress" (the default when empty) or "host".
	PublishMode string
	// WorkDir is the directory relative bind sources are relative to (the
	// BaseDir given to compile); empty refuses relative sources.
	WorkDir string
}

// Stack builds the stack file of p.
func Stack(p *types.Project, opts Options) (*clitypes.Config, error) {
	switch opts.PublishMode {
	case "":
		opts.PublishMode = "ingress"
	case "ingress", "host":
	default:
		return nil, fmt.Errorf("swarm: unknown publish mode %q: want ingress or host", opts.PublishMode)
	}
	cfg := &clitypes.Config{
		Version:  Version,
		Networks: map[string]clitypes.NetworkConfig{},
	}
	for _, name := range slices.Sorted(maps.Keys(p.Networks)) {
		n := p.Networks[name]
		cfg.Networks[name] = clitypes.NetworkConfig{Driver: "overlay", Attachable: true, Labels: clitypes.Labels(n.Labels)}
	}
	if len(p.Volumes) > 0 {
		cfg.Volumes = map[string]clitypes.VolumeConfig{}
		for name, v := range p.Volumes {
			cfg.Volumes[name] = clitypes.VolumeConfig{Labels: clitypes.Labels(v.Labels)}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		sc, err := service(p.Services[name], opts)
		if err != nil {
			return nil, err
		}
		cfg.Services = append(cfg.Services, sc)
	}
	return cfg, nil
}

func service(s types.ServiceConfig, opts Options) (clitypes.ServiceConfig, error) {
	// what depends_on to upgrade: depends_on is dropped here
	if _, ok := s.Labels[compile.LabelWaitImageHealth]; ok {
		s.Labels = maps.Clone(s.Labels)
		delete(s.Labels, compile.LabelWaitImageHealth)
	}
	one := uint64(1)
	delay := clitypes.Duration(RestartDelay)
	sc := clitypes.ServiceConfig{
		Name:    s.Name,
		Image:   s.Image,
		Command: clitypes.ShellCommand(escapeAll(s.Command)),
		Labels:  escapeMap(s.Labels),
		Expose:  clitypes.StringOrNumberList(s.Expose),
		Deploy: clitypes.DeployConfig{
			Replicas:      &one,
			Labels:        escapeMap(s.Labels),
			RestartPolicy: &clitypes.RestartPolicy{Condition: "any", Delay: &delay},
		},
		Networks: map[string]*clitypes.ServiceNetworkConfig{},
	}
	if len(s.Environment) > 0 {
		sc.Environment = clitypes.MappingWithEquals{}
		for k, v := range s.Environment {
			if v != nil {
				e := escape(*v)
				v = &e
			}
			sc.Environment[k] = v
		}
	}
	if h := s.HealthCheck; h != nil {
		sc.HealthCheck = &clitypes.HealthCheckConfig{
			Test:        clitypes.HealthCheckTest(escapeAll(h.Test)),
			Timeout:     (*clitypes.Duration)(h.Timeout),
			Interval:    (*clitypes.Duration)(h.Interval),
			Retries:     h.Retries,
			StartPeriod: (*clitypes.Duration)(h.StartPeriod),
		}
	}
	for net, nc := range s.Networks {
		var c *clitypes.ServiceNetworkConfig
		if nc != nil && len(nc.Aliases) > 0 {
			c = &clitypes.ServiceNetworkConfig{Aliases: slices.Clone(nc.Aliases)}
		}
		sc.Networks[net] = c
	}
	for _, pc := range s.Ports {
		port := clitypes.ServicePortConfig{Mode: opts.PublishMode, Target: pc.Target, Protocol: pc.Protocol}
		if pc.Published != "" {
			n, err := strconv.ParseUint(pc.Published, 10, 16)
			if err != nil {
				return sc, fmt.Errorf("swarm: service %s: published port %q is not a number", s.Name, pc.Published)
			}
			port.Published = uint32(n)
		}
		sc.Ports = append(sc.Ports, port)
	}
	// the runtime adds the image's ports in the stack's publish mode
	imagePorts := s.Labels[compile.LabelPublishImagePorts] == "true"
	if opts.PublishMode != "ingress" || len(sc.Ports) == 0 && !imagePorts {
		sc.Deploy.EndpointMode = "dnsrr"
	}
	for _, v := range s.Volumes {
		vc := clitypes.ServiceVolumeConfig{Type: v.Type, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
		if v.Type == types.VolumeTypeBind && !filepath.IsAbs(v.Source) {
			if opts.WorkDir == "" {
				return sc, fmt.Errorf("swarm: service %s binds the relative host path %q and no working directory was given; use an absolute path or a named VOLUME", s.Name, v.Source)
			}
			vc.Source = filepath.Join(opts.WorkDir, v.Source)
		}
		sc.Volumes = append(sc.Volumes, vc)
	}
	return sc, nil
}

// escape writes '$' as "$$": the stack loader interpolates variables, and
// denv has none (compile.YAML does the same).
func escape(s string) string { return strings.ReplaceAll(s, "$", "$$") }

func escapeAll(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = escape(s)
	}
	return out
}

func escapeMap(m map[string]string) clitypes.Labels {
	if m == nil {
		return nil
	}
	out := clitypes.Labels{}
	for k, v := range m {
		out[k] = escape(v)
	}
	return out
}

// YAML renders cfg as `docker stack config` does: yaml.v3, two-space
// indent, keys in order (services, networks and volumes are maps).
func YAML(cfg *clitypes.Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// StackFile builds and renders the stack file of p (a compose file in the
// subset `docker stack deploy` reads).
func StackFile(p *types.Project, opts Options) ([]byte, error) {
	cfg, err := Stack(p, opts)
	if err != nil {
		return nil, err
	}
	return YAML(cfg)
}
