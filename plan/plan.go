// Package plan computes what `denv update` would do to a running
// environment: given the compose project that was recorded when the
// environment was started (or last updated), the project newly compiled for
// it, and optionally what the engine runs now, it lists the services to
// create, recreate, restart, remove or leave alone, and the networks and
// volumes to create, recreate or remove. It is pure: no Docker, no files.
//
// # When a service is recreated
//
// "Recreate" means exactly "Docker Compose v5.6.0 would recreate the
// container" (pkg/compose/reconcile.go, mustRecreate), so that the plan
// shown is the convergence that happens. Compose stamps every container
// with the hash of its service's configuration ([compose.ServiceHash], which
// this package calls: the same function, the same bytes) and recreates a
// container when:
//
//   - the hash of the new configuration differs from the container's. The
//     hash covers every field of the service except build, pull_policy,
//     scale, deploy.replicas, depends_on and profiles (and compose's own
//     labels, which are not part of the configuration), so a change to
//     image, environment, command, entrypoint, ports, volumes, networks
//     (and their aliases), healthcheck, labels (denv.source included), ...
//     recreates; a change to depends_on alone does not;
//   - the image the container was created from is no longer the image its
//     reference names on the engine (a rebuilt tag), when [Live] says so;
//   - a service it shares a namespace or volumes with (network_mode, ipc,
//     pid: service:X, volumes_from: X) is recreated, transitively;
//   - a named volume it mounts is recreated (its configuration changed;
//     compose asks first, as the data is lost).
//
// # When a service is restarted
//
// A service whose container is kept (same id) but stopped and started again:
//
//   - it declares depends_on X with restart: true and X is recreated (compose
//     stops the direct dependents, then its start phase starts them again;
//     this does not cascade further, and without restart: true a dependent
//     of a recreated service is left running untouched);
//   - it is attached to a network whose configuration changed: compose stops
//     and disconnects the container, recreates the network, reconnects it.
//
// # Inputs
//
// Old and New are *types.Project as backend.Load returns them for the same
// project name (compose-go's loader, normalised). A service is compared by
// its key in Services. When the runtime changes the projects before handing
// them to compose (e.g. publishing image ports), it must do the same to
// both before planning, or the hashes differ where nothing changed.
//
// [Live] is what the engine runs now. Without it (nil) the plan compares
// the recorded project with the new one. With it, a service of New without a
// container is created, a container whose service is in neither project is
// removed, and a container's config-hash label is compared with the new
// hash instead of the recorded project's: what compose compares. Two checks
// of compose need engine ids and are left to the engine: a running
// container not connected to one of its networks, or not mounting one of
// its volumes, is recreated by compose though the plan does not say so.
//
// # The JSON form
//
// [Plan.JSON] writes the [Plan] struct, indented, with the fields:
//
//	{
//	  "project": "web-1",
//	  "services": [                      // sorted by name
//	    {
//	      "name": "web",
//	      "action": "recreate",          // create|recreate|restart|remove|unchanged
//	      "reasons": ["configuration changed"],   // why, for people; omitted when none
//	      "changes": [                   // field-level differences; omitted when none
//	        {"field": "image", "old": "ex/web:1", "new": "ex/web:2"}
//	      ],                             // "old" or "new" omitted when absent on that side
//	      "volumes": ["data"]            // remove only: project keys of the named volumes it used (kept unless --volumes)
//	    }
//	  ],
//	  "networks": [{"name": "left", "action": "create", "services": ["web"]}],
//	  "volumes":  [{"name": "data", "action": "remove", "services": ["db"]}],
//	  "summary": {"create": 1, "recreate": 1, "restart": 0, "remove": 0, "unchanged": 3,
//	              "networks": {"create": 1, ...}, "volumes": {...}}
//	}
//
// Networks and volumes are named by their key in the project (as in the
// compose file); "services" lists the services using them in the project
// where they exist (the old one for a removal), and "action" is one of
// create, recreate, remove (unchanged ones are not listed).
package plan

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/compose"
)

// Action is what the update does to a service, network or volume.
type Action string

// The actions, in the order the summary counts them.
const (
	// Create makes a new container (network, volume).
	Create Action = "create"
	// Recreate replaces the container with a new one (new id).
	Recreate Action = "recreate"
	// Restart stops and starts the container again (same id).
	Restart Action = "restart"
	// Remove removes the container (network, volume).
	Remove Action = "remove"
	// Unchanged leaves the container running untouched.
	Unchanged Action = "unchanged"
)

// Live is the state of the environment on the engine, as the runtime reads
// it from the containers of the project (one container per service; denv
// does not scale).
type Live struct {
	// Services maps the service name (com.docker.compose.service label) to
	// its container. A service absent from the map has no container.
	Services map[string]LiveService
	// Images maps an image reference to the id (digest) of the image the
	// engine holds under it now. Optional: when a service's image is here
	// and differs from its container's ImageDigest, the service is
	// recreated, as compose does for a rebuilt tag.
	Images map[string]string
}

// LiveService is the container of one service.
type LiveService struct {
	// ConfigHash is the container's com.docker.compose.config-hash label.
	ConfigHash string
	// ImageDigest is its com.docker.compose.image label (may be empty).
	ImageDigest string
}

// Plan is the result of [Compute].
type Plan struct {
	// Project is the compose project name (the environment id).
	Project string `json:"project"`
	// Services lists every service of the old and new projects and of the
	// live containers, sorted by name.
	Services []Service `json:"services"`
	// Networks lists the networks created, recreated or removed, sorted.
	Networks []Resource `json:"networks"`
	// Volumes lists the named volumes created, recreated or removed, sorted.
	Volumes []Resource `json:"volumes"`
	// Summary counts the actions.
	Summary Summary `json:"summary"`
}

// Service is the plan of one service.
type Service struct {
	// Name is the service name (its key in the project).
	Name string `json:"name"`
	// Action is what happens to its container.
	Action Action `json:"action"`
	// Reasons says why, in words, sorted; empty for unchanged services.
	Reasons []string `json:"reasons,omitempty"`
	// Changes are the field-level differences between the old and new
	// service, sorted by field. An unchanged service can have changes that
	// compose does not recreate for (depends_on).
	Changes []Change `json:"changes,omitempty"`
	// Volumes are, for a removed service, the named volumes (project keys)
	// it mounted: kept unless the update is told to remove volumes.
	Volumes []string `json:"volumes,omitempty"`
}

// Change is one field-level difference. Field is the compose attribute,
// with the key for map attributes ("environment.MODE", "labels.denv.source",
// "networks.left"); Old or New is empty when the value is absent on that
// side.
type Change struct {
	Field string `json:"field"`
	Old   string `json:"old,omitempty"`
	New   string `json:"new,omitempty"`
}

// Resource is the plan of one network or volume.
type Resource struct {
	// Name is its key in the project.
	Name string `json:"name"`
	// Action is create, recreate or remove.
	Action Action `json:"action"`
	// Services are the services using it, sorted.
	Services []string `json:"services,omitempty"`
}

// Summary counts the actions of a plan.
type Summary struct {
	Create    int `json:"create"`
	Recreate  int `json:"recreate"`
	Restart   int `json:"restart"`
	Remove    int `json:"remove"`
	Unchanged int `json:"unchanged"`
	// Networks and Volumes count the resources by action.
	Networks ResourceSummary `json:"networks"`
	Volumes  ResourceSummary `json:"volumes"`
}

// ResourceSummary counts network or volume actions.
type ResourceSummary struct {
	Create   int `json:"create"`
	Recreate int `json:"recreate"`
	Remove   int `json:"remove"`
}

// count counts one service planned with action a (any other action
// than Create, Recreate, Restart and Remove as Unchanged).
func (s *Summary) count(a Action) {
	switch a {
	case Create:
		s.Create++
	case Recreate:
		s.Recreate++
	case Restart:
		s.Restart++
	case Remove:
		s.Remove++
	default:
		s.Unchanged++
	}
}

// Empty reports whether applying the plan changes nothing.
func (p *Plan) Empty() bool {
	s := p.Summary
	return s.Create+s.Recreate+s.Restart+s.Remove == 0 &&
		s.Networks == (ResourceSummary{}) && s.Volumes == (ResourceSummary{})
}

// Service returns the plan of the named service, and whether there is one.
func (p *Plan) Service(name string) (Service, bool) {
	i, ok := slices.BinarySearchFunc(p.Services, name, func(s Service, n string) int { return strings.Compare(s.Name, n) })
	if !ok {
		return Service{}, false
	}
	return p.Services[i], true
}

// Compute plans the update of the environment running old (the recorded
// project) to new (the newly compiled one); live is what the engine runs
// now, or nil to plan from the record alone. Neither project is modified;
// old and new may be the same project (an update whose YAML did not
// change).
func Compute(old, new *types.Project, live *Live) (*Plan, error) {
	if old == nil || new == nil {
		return nil, fmt.Errorf("plan: a project is missing")
	}
	pl := &Plan{Project: new.Name, Services: []Service{}}
	states := map[string]*Service{}
	state := func(name string) *Service {
		s, ok := states[name]
		if !ok {
			s = &Service{Name: name, Action: Unchanged}
			states[name] = s
		}
		return s
	}
	newHash := make(map[string]string, len(new.Services))

	// Networks and volumes first: their recreation recreates or restarts
	// the services using them.
	netActions, err := resources(old.Networks, new.Networks, networkHash)
	if err != nil {
		return nil, err
	}
	volActions, err := resources(old.Volumes, new.Volumes, func(v types.VolumeConfig) (string, error) { return compose.VolumeHash(v) })
	if err != nil {
		return nil, err
	}

	for _, name := range sortedKeys(new.Services) {
		ns := new.Services[name]
		s := state(name)
		h, err := compose.ServiceHash(ns)
		if err != nil {
			return nil, fmt.Errorf("plan: service %s: %w", name, err)
		}
		newHash[name] = h
		os, existed := old.Services[name]
		oh := ""
		if existed {
			oh = h
			if old != new { // the same project: the same hash
				oh = hashOf(os)
			}
			// The field diff only where something differs: the hash
			// covers all but the attributes compose leaves out of it.
			if oh != h || !reflect.DeepEqual(os.DependsOn, ns.DependsOn) || !unhashedEqual(os, ns) {
				s.Changes = diffService(os, ns)
			}
		}
		if live != nil {
			c, running := live.Services[name]
			switch {
			case !running && existed:
				s.recreateAs(Create, "no container")
			case !running:
				s.recreateAs(Create, "new service")
			case usesServiceRefs(ns):
				if !existed || oh != h {
					s.recreateAs(Recreate, "configuration changed")
				}
			case c.ConfigHash != h && existed && oh == h:
				s.recreateAs(Recreate, "container configuration differs from the recorded project")
			case c.ConfigHash != h:
				s.recreateAs(Recreate, "configuration changed")
			}
			if d := live.Images[ns.Image]; running && d != "" && c.ImageDigest != "" && d != c.ImageDigest {
				s.recreateAs(Recreate, "image "+ns.Image+" changed on the engine")
			}
			continue
		}
		switch {
		case !existed:
			s.recreateAs(Create, "new service")
		case oh != h:
			s.recreateAs(Recreate, "configuration changed")
		}
	}

	// Volumes recreated: the services mounting them (directly or through
	// volumes_from, the cascade below) are recreated.
	for _, name := range sortedKeys(new.Services) {
		for _, v := range new.Services[name].Volumes {
			if v.Type == types.VolumeTypeVolume && volActions[v.Source] == Recreate {
				state(name).recreateAs(Recreate, "volume "+v.Source+" recreated")
			}
		}
	}
	cascadeNamespaces(new, states)

	// Restarts: dependents with restart: true of a recreated service, and
	// the services on a recreated network, when nothing else happens to
	// them.
	for _, name := range sortedKeys(new.Services) {
		s := states[name]
		for _, dep := range sortedKeys(new.Services[name].DependsOn) {
			if new.Services[name].DependsOn[dep].Restart && states[dep] != nil && states[dep].Action == Recreate {
				s.restart("dependency " + dep + " recreated (depends_on restart: true)")
			}
		}
		for _, net := range sortedKeys(new.Services[name].Networks) {
			if netActions[net] == Recreate {
				s.restart("network " + net + " recreated")
			}
		}
	}

	// Removals: services of the old project, and live containers of
	// services in neither project.
	for _, name := range sortedKeys(old.Services) {
		if _, ok := new.Services[name]; ok {
			continue
		}
		s := state(name)
		s.Action = Remove
		s.Reasons = []string{"not in the new project"}
		if live != nil {
			if _, ok := live.Services[name]; !ok {
				s.Reasons = []string{"not in the new project (no container)"}
			}
		}
		s.Volumes = namedVolumes(old, old.Services[name])
	}
	if live != nil {
		for _, name := range sortedKeys(live.Services) {
			if _, ok := states[name]; ok {
				continue
			}
			s := state(name)
			s.Action = Remove
			s.Reasons = []string{"container of a service in neither project"}
		}
	}

	for _, name := range sortedKeys(states) {
		s := *states[name]
		slices.Sort(s.Reasons)
		pl.Services = append(pl.Services, s)
		pl.Summary.count(s.Action)
	}
	pl.Networks = resourceList(netActions, old, new, func(s types.ServiceConfig, key string) bool {
		_, ok := s.Networks[key]
		return ok
	}, &pl.Summary.Networks)
	pl.Volumes = resourceList(volActions, old, new, func(s types.ServiceConfig, key string) bool {
		return slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Source == key
		})
	}, &pl.Summary.Volumes)
	return pl, nil
}

// recreateAs sets the action to a (create or recreate) and adds the reason.
func (s *Service) recreateAs(a Action, reason string) {
	if s.Action != Create {
		s.Action = a
	}
	if !slices.Contains(s.Reasons, reason) {
		s.Reasons = append(s.Reasons, reason)
	}
}

// restart marks an otherwise unchanged service restarted, for reason.
func (s *Service) restart(reason string) {
	if s.Action != Unchanged && s.Action != Restart {
		return
	}
	s.Action = Restart
	if !slices.Contains(s.Reasons, reason) {
		s.Reasons = append(s.Reasons, reason)
	}
}

// unhashedEqual compares the attributes compose leaves out of the hash
// besides depends_on (build, pull_policy, scale, deploy.replicas,
// profiles), so that a change to them is still shown.
func unhashedEqual(o, n types.ServiceConfig) bool {
	or, nr := o.Deploy, n.Deploy
	return reflect.DeepEqual(o.Build, n.Build) && o.PullPolicy == n.PullPolicy &&
		reflect.DeepEqual(o.Scale, n.Scale) && reflect.DeepEqual(o.Profiles, n.Profiles) &&
		(or == nil) == (nr == nil) && (or == nil || reflect.DeepEqual(or.Replicas, nr.Replicas))
}

// hashOf is compose's hash of s; an error (a configuration json cannot
// encode) gives "", which differs from any hash.
func hashOf(s types.ServiceConfig) string {
	h, err := compose.ServiceHash(s)
	if err != nil {
		return ""
	}
	return h
}

// networkHash is compose.NetworkHash on a value.
func networkHash(n types.NetworkConfig) (string, error) { return compose.NetworkHash(&n) }

// usesServiceRefs reports whether s refers to another service's container
// (network_mode, ipc, pid: service:X, volumes_from): compose hashes those
// with the referenced container's id, which only the engine knows, so the
// live hash cannot be compared and the recorded project is used instead.
func usesServiceRefs(s types.ServiceConfig) bool {
	return len(s.VolumesFrom) > 0 || namespaceParent(s.NetworkMode) != "" ||
		namespaceParent(s.Ipc) != "" || namespaceParent(s.Pid) != ""
}

// namespaceParent is X in "service:X", else "".
func namespaceParent(mode string) string {
	if name, ok := strings.CutPrefix(mode, types.ServicePrefix); ok {
		return name
	}
	return ""
}

// cascadeNamespaces recreates, until nothing changes, every service whose
// namespace or volumes_from parent is recreated (compose's
// parentNamespaceRecreated, applied in dependency order there: the fixed
// point here gives the same set).
func cascadeNamespaces(p *types.Project, states map[string]*Service) {
	names := sortedKeys(p.Services)
	for changed := true; changed; {
		changed = false
		for _, name := range names {
			s := p.Services[name]
			var parents []string
			for _, mode := range []string{s.NetworkMode, s.Ipc, s.Pid} {
				if n := namespaceParent(mode); n != "" {
					parents = append(parents, n)
				}
			}
			for _, vf := range s.VolumesFrom {
				if !strings.HasPrefix(vf, types.ContainerPrefix) {
					n, _, _ := strings.Cut(vf, ":")
					parents = append(parents, n)
				}
			}
			for _, parent := range parents {
				ps := states[parent]
				if ps == nil || ps.Action != Recreate {
					continue
				}
				st := states[name]
				if st.Action == Unchanged || st.Action == Restart {
					st.Action = Recreate
					st.Reasons = nil
					changed = true
				}
				if st.Action == Recreate {
					reason := "shares namespace or volumes with " + parent + ", recreated"
					if !slices.Contains(st.Reasons, reason) {
						st.Reasons = append(st.Reasons, reason)
					}
				}
			}
		}
	}
}

// resources compares the networks or volumes of two projects by key:
// created, removed, or recreated when compose's hash of the configuration
// differs (compose recreates a diverged network or volume). External ones
// are left alone, as compose does.
func resources[T any](old, new map[string]T, hash func(T) (string, error)) (map[string]Action, error) {
	out := map[string]Action{}
	for k, n := range new {
		if external(n) {
			continue
		}
		o, ok := old[k]
		if !ok {
			out[k] = Create
			continue
		}
		ho, err := hash(o)
		if err != nil {
			return nil, fmt.Errorf("plan: %s: %w", k, err)
		}
		hn, err := hash(n)
		if err != nil {
			return nil, fmt.Errorf("plan: %s: %w", k, err)
		}
		if ho != hn {
			out[k] = Recreate
		}
	}
	for k, o := range old {
		if _, ok := new[k]; !ok && !external(o) {
			out[k] = Remove
		}
	}
	return out, nil
}

// external reports whether a network or volume configuration is external.
func external(v any) bool {
	switch c := v.(type) {
	case types.NetworkConfig:
		return bool(c.External)
	case types.VolumeConfig:
		return bool(c.External)
	}
	return false
}

// resourceList turns the actions into sorted resources with their users
// (in the new project, or the old one for a removal), counting them.
func resourceList(actions map[string]Action, old, new *types.Project, uses func(types.ServiceConfig, string) bool, sum *ResourceSummary) []Resource {
	out := []Resource{}
	for _, k := range sortedKeys(actions) {
		a := actions[k]
		p := new
		if a == Remove {
			p = old
		}
		r := Resource{Name: k, Action: a}
		for _, name := range sortedKeys(p.Services) {
			if uses(p.Services[name], k) {
				r.Services = append(r.Services, name)
			}
		}
		switch a {
		case Create:
			sum.Create++
		case Recreate:
			sum.Recreate++
		case Remove:
			sum.Remove++
		}
		out = append(out, r)
	}
	return out
}

// namedVolumes lists the project volumes s mounts, sorted.
func namedVolumes(p *types.Project, s types.ServiceConfig) []string {
	var out []string
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			continue
		}
		if _, ok := p.Volumes[v.Source]; ok && !slices.Contains(out, v.Source) {
			out = append(out, v.Source)
		}
	}
	slices.Sort(out)
	return out
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
