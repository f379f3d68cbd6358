package stack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/docker/cli/cli/compose/convert"
	clitypes "github.com/docker/cli/cli/compose/types"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/plan"
)

// An update of a stack (`denv update` on the swarm engine) converges the
// running stack to a new stack file service by service, as `docker stack
// deploy` of the new file onto the old stack would, with a plan first:
//
//   - Every service denv deploys carries the label [LabelSpecHash]: the
//     hash of its service spec as converted from the stack file (images
//     ports published), leaving out the replicas (stop and start scale
//     them) and denv's descriptive labels (denv.source, ...: where a
//     service came from, not how it runs). It is swarm's counterpart of
//     compose's config-hash label: a live service whose label differs from
//     the new spec's hash is updated (a new task, so a new container: the
//     plan says "recreate"); one whose label matches is left alone, its
//     task and container untouched.
//   - A service of the new file the stack lacks is created, a service of
//     the stack not in the new file is removed (its named volumes kept
//     unless asked), new networks are created and the stack's networks
//     no service uses any more removed.
//   - A network or volume whose configuration changed would have to be
//     recreated while services use it: the plan shows it and the update
//     refuses before changing anything (rm and run again).
//   - An update starts the services of a stopped stack again (one task
//     each), as compose's up starts stopped containers.
//
// Update then waits until every service runs a task of its current spec
// (swarm's "_up-to-date" task filter), healthy when it has a healthcheck.

// LabelSpecHash is the service label holding the hash of the spec denv
// deployed (see [specHash]).
const LabelSpecHash = "denv.spec-hash"

var _ backend.Updater = (*Engine)(nil)

// plannedStack is the prepared new stack of the last Plan, for Update to
// reuse when it is given the same deployment.
type plannedStack struct {
	d backend.Deployment
	p *prepared
}

func sameDeployment(a, b backend.Deployment) bool {
	return a.ID == b.ID && a.WorkDir == b.WorkDir && string(a.Project) == string(b.Project)
}

// specHash is the hash of spec that update compares: sha256 of its JSON
// without the replicas, the LabelSpecHash label and denv's descriptive
// labels (service and container labels).
func specHash(spec swarm.ServiceSpec) (string, error) {
	data, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	var c swarm.ServiceSpec
	if err := json.Unmarshal(data, &c); err != nil {
		return "", err
	}
	c.Labels = hashedLabels(c.Labels)
	if cs := c.TaskTemplate.ContainerSpec; cs != nil {
		cs.Labels = hashedLabels(cs.Labels)
	}
	if c.Mode.Replicated != nil {
		c.Mode.Replicated.Replicas = nil
	}
	if data, err = json.Marshal(c); err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// hashedLabels are the labels of m that specHash covers.
func hashedLabels(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != LabelSpecHash && !backend.DescriptiveLabel(k) {
			out[k] = v
		}
	}
	return out
}

// Plan compares the recorded stack file old, the new one and the services
// of stack old.ID (their LabelSpecHash labels). It pulls the images of new
// the manager lacks (their EXPOSE ports are part of the specs) and
// changes nothing on the stack.
func (e *Engine) Plan(ctx context.Context, old, new backend.Deployment) (*plan.Plan, error) {
	if err := e.requireManager(ctx); err != nil {
		return nil, err
	}
	ocfg, err := LoadStack(old.Project, old.WorkDir)
	if err != nil {
		return nil, err
	}
	ncfg, err := LoadStack(new.Project, new.WorkDir)
	if err != nil {
		return nil, err
	}
	np, err := e.prepare(ctx, new.ID, ncfg)
	if err != nil {
		return nil, fmt.Errorf("%w; nothing was changed", err)
	}
	live, err := e.liveServices(ctx, old.ID)
	if err != nil {
		return nil, err
	}
	e.planned = &plannedStack{d: new, p: np}
	return computePlan(old.ID, ocfg, np, live), nil
}

// liveServices are the services of stack name by stack service name
// (without the stack prefix).
func (e *Engine) liveServices(ctx context.Context, name string) (map[string]swarm.Service, error) {
	svcs, err := e.stackServices(ctx, name)
	if err != nil {
		return nil, err
	}
	out := map[string]swarm.Service{}
	for _, s := range svcs {
		out[strings.TrimPrefix(s.Spec.Name, name+"_")] = s
	}
	return out, nil
}

// computePlan is the plan of converging live (the stack's services) from
// the recorded stack file old to the prepared stack np.
func computePlan(id string, old *clitypes.Config, np *prepared, live map[string]swarm.Service) *plan.Plan {
	oldSvcs := servicesByName(old)
	newSvcs := servicesByName(np.cfg)
	var svcs []plan.Service
	for _, name := range slices.Sorted(maps.Keys(np.specs)) {
		s := plan.Service{Name: name, Action: plan.Unchanged}
		os, existed := oldSvcs[name]
		if existed {
			s.Changes = plan.Fields(comparable(os), comparable(newSvcs[name]))
		}
		l, running := live[name]
		switch {
		case !running && existed:
			s.Action, s.Reasons = plan.Create, []string{"no service on the swarm"}
		case !running:
			s.Action, s.Reasons = plan.Create, []string{"new service"}
		case l.Spec.Labels[LabelSpecHash] == np.specs[name].Labels[LabelSpecHash]:
		case len(s.Changes) > 0 || !existed:
			s.Action, s.Reasons = plan.Recreate, []string{"configuration changed"}
		case l.Spec.Labels[LabelSpecHash] == "":
			s.Action, s.Reasons = plan.Recreate, []string{"service deployed without a spec hash"}
		default:
			s.Action, s.Reasons = plan.Recreate, []string{"service spec differs from the recorded project"}
		}
		svcs = append(svcs, s)
	}
	for _, name := range slices.Sorted(maps.Keys(oldSvcs)) {
		if _, ok := np.specs[name]; ok {
			continue
		}
		s := plan.Service{Name: name, Action: plan.Remove, Reasons: []string{"not in the new project"}}
		if _, ok := live[name]; !ok {
			s.Reasons = []string{"not in the new project (no service)"}
		}
		s.Volumes = namedVolumes(old, oldSvcs[name])
		svcs = append(svcs, s)
	}
	for _, name := range slices.Sorted(maps.Keys(live)) {
		_, inOld := oldSvcs[name]
		if _, inNew := np.specs[name]; !inOld && !inNew {
			svcs = append(svcs, plan.Service{Name: name, Action: plan.Remove, Reasons: []string{"service of the stack in neither project"}})
		}
	}
	nets, vols := resourcePlan(old, np.cfg)
	return plan.Assemble(id, svcs, nets, vols)
}

// servicesByName indexes the services of cfg.
func servicesByName(cfg *clitypes.Config) map[string]clitypes.ServiceConfig {
	out := map[string]clitypes.ServiceConfig{}
	for _, s := range cfg.Services {
		out[s.Name] = s
	}
	return out
}

// comparable is s without denv's descriptive labels, for the field diff.
func comparable(s clitypes.ServiceConfig) clitypes.ServiceConfig {
	s.Labels = clitypes.Labels(hashedLabels(s.Labels))
	s.Deploy.Labels = clitypes.Labels(hashedLabels(s.Deploy.Labels))
	return s
}

// namedVolumes lists the stack volumes s mounts, sorted.
func namedVolumes(cfg *clitypes.Config, s clitypes.ServiceConfig) []string {
	var out []string
	for _, v := range s.Volumes {
		if _, ok := cfg.Volumes[v.Source]; ok && v.Type == "volume" && !slices.Contains(out, v.Source) {
			out = append(out, v.Source)
		}
	}
	slices.Sort(out)
	return out
}

// resourcePlan compares the networks (those services use) and volumes of
// two stack files by key.
func resourcePlan(old, new *clitypes.Config) (nets, vols []plan.Resource) {
	users := func(cfg *clitypes.Config, uses func(clitypes.ServiceConfig) bool) []string {
		var out []string
		for _, s := range cfg.Services {
			if uses(s) {
				out = append(out, s.Name)
			}
		}
		return out
	}
	onNet := func(cfg *clitypes.Config, k string) []string {
		return users(cfg, func(s clitypes.ServiceConfig) bool { _, ok := s.Networks[k]; return ok })
	}
	mounts := func(cfg *clitypes.Config, k string) []string {
		return users(cfg, func(s clitypes.ServiceConfig) bool {
			return slices.ContainsFunc(s.Volumes, func(v clitypes.ServiceVolumeConfig) bool { return v.Type == "volume" && v.Source == k })
		})
	}
	on, nn := usedNetworks(old), usedNetworks(new)
	for k := range nn {
		switch _, ok := on[k]; {
		case !ok:
			nets = append(nets, plan.Resource{Name: k, Action: plan.Create, Services: onNet(new, k)})
		case !jsonEqual(old.Networks[k], new.Networks[k]):
			nets = append(nets, plan.Resource{Name: k, Action: plan.Recreate, Services: onNet(new, k)})
		}
	}
	for k := range on {
		if _, ok := nn[k]; !ok {
			nets = append(nets, plan.Resource{Name: k, Action: plan.Remove, Services: onNet(old, k)})
		}
	}
	for k, nv := range new.Volumes {
		switch ov, ok := old.Volumes[k]; {
		case !ok:
			vols = append(vols, plan.Resource{Name: k, Action: plan.Create, Services: mounts(new, k)})
		case !jsonEqual(ov, nv):
			vols = append(vols, plan.Resource{Name: k, Action: plan.Recreate, Services: mounts(new, k)})
		}
	}
	for k := range old.Volumes {
		if _, ok := new.Volumes[k]; !ok {
			vols = append(vols, plan.Resource{Name: k, Action: plan.Remove, Services: mounts(old, k)})
		}
	}
	return nets, vols
}

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// Update converges stack old.ID to the stack file of new: services whose
// spec hash differs are updated (with the registry credentials), missing
// ones created, ones no longer in new removed, networks created and
// removed; then it waits until every service runs a task of its current
// spec. A changed network or volume is refused before anything changes.
func (e *Engine) Update(ctx context.Context, old, new backend.Deployment, opts backend.UpdateOptions) error {
	if err := e.requireManager(ctx); err != nil {
		return err
	}
	ocfg, err := LoadStack(old.Project, old.WorkDir)
	if err != nil {
		return err
	}
	var np *prepared
	if e.planned != nil && sameDeployment(e.planned.d, new) {
		np = e.planned.p
	} else {
		ncfg, err := LoadStack(new.Project, new.WorkDir)
		if err != nil {
			return err
		}
		if np, err = e.prepare(ctx, new.ID, ncfg); err != nil {
			return err
		}
	}
	e.planned = nil
	nets, vols := resourcePlan(ocfg, np.cfg)
	for _, r := range append(nets, vols...) {
		if r.Action == plan.Recreate {
			kind := "network"
			if slices.ContainsFunc(vols, func(v plan.Resource) bool { return v.Name == r.Name }) {
				kind = "volume"
			}
			return fmt.Errorf("stack %s: the configuration of %s %s changed: swarm cannot recreate it while services use it; nothing was changed ('denv rm' and 'denv run' again)", old.ID, kind, r.Name)
		}
	}
	live, err := e.liveServices(ctx, old.ID)
	if err != nil {
		return err
	}
	existing, err := e.stackNetworks(ctx, old.ID)
	if err != nil {
		return err
	}
	if err := e.createNetworks(ctx, np, existing); err != nil {
		return err
	}
	for _, n := range slices.Sorted(maps.Keys(np.specs)) {
		spec := np.specs[n]
		l, ok := live[n]
		switch {
		case !ok:
			err = e.createService(ctx, np, n)
		case l.Spec.Labels[LabelSpecHash] != spec.Labels[LabelSpecHash]:
			err = e.updateService(ctx, np.name, l, spec)
		case replicas(l.Spec) != replicas(spec):
			// unchanged but stopped: started again, spec untouched
			s := l.Spec
			r := replicas(spec)
			s.Mode.Replicated.Replicas = &r
			if uerr := e.serviceUpdate(ctx, l, client.ServiceUpdateOptions{Spec: s}); uerr != nil {
				err = fmt.Errorf("stack %s: cannot start service %s: %s", np.name, s.Name, backend.OneLine(uerr))
			}
		}
		if err != nil {
			return err
		}
	}
	for _, n := range slices.Sorted(maps.Keys(live)) {
		if _, ok := np.specs[n]; ok {
			continue
		}
		if _, err := e.api.ServiceRemove(ctx, live[n].ID, client.ServiceRemoveOptions{}); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("stack %s: cannot remove service %s: %s", np.name, live[n].Spec.Name, backend.OneLine(err))
		}
	}
	for n, id := range existing {
		if _, ok := np.nets[n]; ok {
			continue
		}
		// busy until the removed services' containers are gone
		if err := retry(ctx, func() error {
			_, err := e.api.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
			if errdefs.IsNotFound(err) {
				return nil
			}
			return err
		}); err != nil {
			return fmt.Errorf("stack %s: cannot remove network %s: %s", np.name, n, backend.OneLine(err))
		}
	}
	if err := e.removeVolumes(ctx, old.ID, ocfg, opts.RemoveVolumes); err != nil {
		return err
	}
	return e.WaitStack(ctx, np.name, waitTimeout)
}

// replicas is the number of tasks spec asks for (1 for a global service,
// which denv does not deploy).
func replicas(spec swarm.ServiceSpec) uint64 {
	if r := spec.Mode.Replicated; r != nil && r.Replicas != nil {
		return *r.Replicas
	}
	return 1
}

// updateService replaces the spec of the live service l by spec, with the
// registry credentials of its image.
func (e *Engine) updateService(ctx context.Context, name string, l swarm.Service, spec swarm.ServiceSpec) error {
	auth, err := e.imageAuth(spec)
	if err != nil {
		return fmt.Errorf("stack %s: service %s: %w", name, spec.Name, err)
	}
	if err := e.serviceUpdate(ctx, l, client.ServiceUpdateOptions{Spec: spec, EncodedRegistryAuth: auth}); err != nil {
		return fmt.Errorf("stack %s: cannot update service %s: %s", name, spec.Name, backend.OneLine(err))
	}
	return nil
}

// serviceUpdate updates service l with opts at l's version; when swarm
// changed the service meanwhile (it records an update's progress a few
// seconds after its task runs: "update out of sequence"), it reads the
// new version and tries again, a few times.
func (e *Engine) serviceUpdate(ctx context.Context, l swarm.Service, opts client.ServiceUpdateOptions) error {
	version := l.Version
	for attempt := 0; ; attempt++ {
		opts.Version = version
		_, err := e.api.ServiceUpdate(ctx, l.ID, opts)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "out of sequence") {
			return err
		}
		res, ierr := e.api.ServiceInspect(ctx, l.ID, client.ServiceInspectOptions{})
		if ierr != nil {
			return err
		}
		version = res.Service.Version
	}
}

// stackNetworks maps the engine names of the networks of stack name to
// their ids.
func (e *Engine) stackNetworks(ctx context.Context, name string) (map[string]string, error) {
	nets, err := e.api.NetworkList(ctx, client.NetworkListOptions{Filters: stackFilter(name)})
	if err != nil {
		return nil, fmt.Errorf("stack %s: cannot list networks: %s", name, backend.OneLine(err))
	}
	out := map[string]string{}
	for _, n := range nets.Items {
		out[n.Name] = n.ID
	}
	return out, nil
}

// removeVolumes removes the volumes of cfg named by keys (stack file
// keys; engine name ID_KEY unless the file names it), waiting while the
// containers of removed services still use them.
func (e *Engine) removeVolumes(ctx context.Context, id string, cfg *clitypes.Config, keys []string) error {
	var errs []error
	for _, k := range keys {
		v, ok := cfg.Volumes[k]
		if !ok || v.External.External {
			continue
		}
		name := v.Name
		if name == "" {
			name = convert.NewNamespace(id).Scope(k)
		}
		if err := retry(ctx, func() error {
			_, err := e.api.VolumeRemove(ctx, name, client.VolumeRemoveOptions{})
			if errdefs.IsNotFound(err) {
				return nil
			}
			return err
		}); err != nil {
			errs = append(errs, fmt.Errorf("cannot remove volume %s: %s", name, backend.OneLine(err)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("stack %s: %w", id, errors.Join(errs...))
	}
	return nil
}
