// Package kube is the Kubernetes target of the compile stage: it turns the
// compose project that compile.Compile builds into typed Kubernetes objects
// (k8s.io/api) and prints them as one multi-document YAML stream that
// `kubectl apply -f -` accepts. It is pure: no cluster, no network.
//
// The mapping, chosen to keep denv's naming and encapsulation:
//
//   - Every compose service S becomes a Deployment S (one replica) and a
//     Service S selecting its pod, so that S resolves in the namespace as it
//     does on a compose network. A service with ports (PORT clauses) gets a
//     ClusterIP Service with those ports; one without gets a headless
//     Service (clusterIP: None), whose name resolves to the pod's address so
//     that any port its image listens on works, as on compose.
//   - Network aliases (the "E-x" and "E" names an environment's exposed
//     services carry on the networks of the environments that include E,
//     and the short names of an included environment's services on its own
//     network) become extra Services with the alias as name, selecting the
//     same pod. A namespace has one flat name space, where a compose alias
//     is per network: an alias that means different services on different
//     networks, or that is not a DNS-1035 label, is not created and is
//     listed in a comment at the top of the output.
//   - A service exposed by the root with published ports also gets a
//     LoadBalancer Service "S-published" on the published port (the
//     container port when the PORT clause leaves the host port open). One
//     without PORT clauses (which the local runtime publishes on its
//     image's EXPOSE ports) cannot be given ports without its image: reach
//     it with `kubectl port-forward deploy/S PORT`.
//   - Each named volume becomes a PersistentVolumeClaim (ReadWriteOnce,
//     1Gi); a Deployment that mounts one uses the Recreate strategy. Bind
//     mounts become hostPath volumes (they only make sense on a one-node
//     cluster); a relative source is made absolute with Options.WorkDir,
//     and is an error without one.
//   - Each environment (compose network) gets one NetworkPolicy, named
//     after the environment, selecting the pods on its network and admitting
//     ingress only from pods on that network: the environment's own pods
//     and the exposed services of the environments it includes. Policies add
//     up, so an exposed service admits traffic from each environment that
//     includes it, and nothing else does: the compose encapsulation. A
//     published service gets a policy "S-published" admitting anyone on its
//     published ports.
//   - READY becomes a startupProbe and a readinessProbe running its
//     command (see probes): Kubernetes has no start order, so a LINK does
//     not delay a pod; the readiness probe keeps a pod out of its Services
//     (and so out of the names that LINK it) until it is ready.
//
// Provenance: labels app.kubernetes.io/{name,instance,managed-by} and
// denv.io/environment; annotations denv.io/definition, denv.io/environment
// and denv.io/source (file:line), whose values do not fit a label's charset.
package kube

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/alebellu/denv/compile"
)

// Labels and annotations denv sets on the objects it generates.
const (
	LabelName        = "app.kubernetes.io/name"       // the compose service name
	LabelInstance    = "app.kubernetes.io/instance"   // the project name
	LabelManagedBy   = "app.kubernetes.io/managed-by" // "denv"
	LabelEnvironment = "denv.io/environment"          // the environment instance, sanitized
	// NetworkLabelPrefix + network marks the pods on a compose network.
	NetworkLabelPrefix = "network.denv.io/"

	AnnotationDefinition  = "denv.io/definition"
	AnnotationEnvironment = "denv.io/environment"
	AnnotationSource      = "denv.io/source"
	// AnnotationParamPrefix + NAME carries compile.LabelParamPrefix + NAME:
	// a parameter value the environment was compiled with (masked when
	// secret).
	AnnotationParamPrefix = "denv.io/param."
)

// VolumeSize is the storage each PersistentVolumeClaim requests.
const VolumeSize = "1Gi"

// Result is what Objects builds.
type Result struct {
	// Objects are the typed objects, in output order.
	Objects []runtime.Object
	// Notes say what could not be carried over (aliases a flat namespace
	// cannot hold), one line each.
	Notes []string
}

// Options configure Objects.
type Options struct {
	// WorkDir is the directory relative bind sources are relative to (the
	// BaseDir given to compile); empty refuses relative sources.
	WorkDir string
}

// Manifests builds the objects of p and renders them.
func Manifests(p *types.Project, opts Options) ([]byte, error) {
	r, err := Objects(p, opts)
	if err != nil {
		return nil, err
	}
	return YAML(r)
}

// Objects builds the Kubernetes objects of p. The order is deterministic:
// NetworkPolicies first (so no pod ever runs unprotected when applied in
// order), then PersistentVolumeClaims, then per service in name order its
// Services and Deployment, then the alias Services.
func Objects(p *types.Project, opts Options) (*Result, error) {
	b := &builder{p: p, opts: opts, taken: map[string]string{}}
	if err := b.build(); err != nil {
		return nil, err
	}
	return &Result{Objects: b.objs, Notes: b.notes}, nil
}

type builder struct {
	p     *types.Project
	opts  Options
	objs  []runtime.Object
	notes []string
	taken map[string]string // Service name -> what claimed it
}

func (b *builder) build() error {
	names := slices.Sorted(maps.Keys(b.p.Services))
	for _, n := range names {
		if errs := validation.IsDNS1035Label(n); len(errs) > 0 {
			return fmt.Errorf("kubernetes: service name %q is not a DNS-1035 label (%s); rename it with AS", n, errs[0])
		}
		b.taken[n] = "service " + n
	}
	if err := b.policies(names); err != nil {
		return err
	}
	if err := b.claims(); err != nil {
		return err
	}
	for _, n := range names {
		if err := b.service(b.p.Services[n]); err != nil {
			return err
		}
	}
	return b.aliases(names)
}

func (b *builder) meta(name string, labels types.Labels) metav1.ObjectMeta {
	m := metav1.ObjectMeta{
		Name: name,
		Labels: map[string]string{
			LabelInstance:  b.p.Name,
			LabelManagedBy: "denv",
		},
	}
	if env := labels[compile.LabelEnvironment]; env != "" {
		m.Labels[LabelEnvironment] = labelValue(env)
	}
	for ann, label := range map[string]string{
		AnnotationEnvironment: compile.LabelEnvironment,
		AnnotationDefinition:  compile.LabelDefinition,
		AnnotationSource:      compile.LabelSource,
	} {
		if v := labels[label]; v != "" {
			if m.Annotations == nil {
				m.Annotations = map[string]string{}
			}
			m.Annotations[ann] = v
		}
	}
	for k, v := range labels {
		if name, ok := strings.CutPrefix(k, compile.LabelParamPrefix); ok {
			if m.Annotations == nil {
				m.Annotations = map[string]string{}
			}
			m.Annotations[AnnotationParamPrefix+name] = v
		}
	}
	return m
}

func (b *builder) selector(svc string) map[string]string {
	return map[string]string{LabelInstance: b.p.Name, LabelName: svc}
}

// policyName is the environment a compose network belongs to: the
// network's name, or the project's for the root's network "default".
func (b *builder) policyName(network string) string {
	if network == "default" {
		return b.p.Name
	}
	return network
}

func (b *builder) policies(services []string) error {
	if _, ok := b.p.Networks[b.p.Name]; ok && b.p.Name != "default" {
		// the root's policy is named after the project: two policies with
		// one name would overwrite each other when applied
		return fmt.Errorf("kubernetes: the project name %q is also an included environment's name; choose another with --name", b.p.Name)
	}
	for _, net := range slices.Sorted(maps.Keys(b.p.Networks)) {
		key := NetworkLabelPrefix + net
		if errs := validation.IsQualifiedName(key); len(errs) > 0 {
			return fmt.Errorf("kubernetes: network %q cannot be a label key (%s)", net, errs[0])
		}
		members := map[string]string{LabelInstance: b.p.Name, key: "true"}
		m := b.meta(b.policyName(net), nil)
		m.Labels[LabelEnvironment] = labelValue(b.policyName(net))
		b.objs = append(b.objs, &networkingv1.NetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: m,
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: members},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: members}}},
				}},
			},
		})
	}
	for _, n := range services {
		sc := b.p.Services[n]
		if len(sc.Ports) == 0 {
			continue
		}
		var ports []networkingv1.NetworkPolicyPort
		for _, pc := range sc.Ports {
			proto := protocol(pc.Protocol)
			port := intstr.FromInt32(int32(pc.Target))
			ports = append(ports, networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &port})
		}
		b.objs = append(b.objs, &networkingv1.NetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: b.meta(n+"-published", sc.Labels),
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: b.selector(n)},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: ports}},
			},
		})
	}
	return nil
}

func (b *builder) claims() error {
	for _, name := range slices.Sorted(maps.Keys(b.p.Volumes)) {
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			return fmt.Errorf("kubernetes: volume name %q is not a DNS-1123 label (%s)", name, errs[0])
		}
		b.objs = append(b.objs, &corev1.PersistentVolumeClaim{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: b.meta(name, b.p.Volumes[name].Labels),
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(VolumeSize)},
				},
			},
		})
	}
	return nil
}

// port is one container port of a service.
type port struct {
	target    int32
	published int32 // 0: not published
	protocol  corev1.Protocol
}

func ports(sc types.ServiceConfig) ([]port, error) {
	var ps []port
	for _, pc := range sc.Ports {
		pub := int32(pc.Target)
		if pc.Published != "" {
			n, err := strconv.ParseUint(pc.Published, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("kubernetes: service %s: published port %q is not a number", sc.Name, pc.Published)
			}
			pub = int32(n)
		}
		ps = append(ps, port{target: int32(pc.Target), published: pub, protocol: protocol(pc.Protocol)})
	}
	for _, e := range sc.Expose {
		num, proto, _ := strings.Cut(e, "/")
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: service %s: exposed port %q is not a number", sc.Name, e)
		}
		ps = append(ps, port{target: int32(n), protocol: protocol(proto)})
	}
	return ps, nil
}

func protocol(p string) corev1.Protocol {
	if strings.EqualFold(p, "udp") {
		return corev1.ProtocolUDP
	}
	return corev1.ProtocolTCP
}

func portName(p port) string {
	return strings.ToLower(string(p.protocol)) + "-" + strconv.Itoa(int(p.target))
}

// clusterService is the Service named name that makes sc's pod reachable
// on its ports, or by address when it has none.
func (b *builder) clusterService(name string, sc types.ServiceConfig, ps []port) *corev1.Service {
	spec := corev1.ServiceSpec{Selector: b.selector(sc.Name)}
	if len(ps) == 0 {
		spec.ClusterIP = corev1.ClusterIPNone
	}
	for _, p := range ps {
		spec.Ports = append(spec.Ports, corev1.ServicePort{
			Name: portName(p), Protocol: p.protocol, Port: p.target, TargetPort: intstr.FromInt32(p.target),
		})
	}
	m := b.meta(name, sc.Labels)
	m.Labels[LabelName] = sc.Name
	return &corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}, ObjectMeta: m, Spec: spec}
}

func (b *builder) service(sc types.ServiceConfig) error {
	ps, err := ports(sc)
	if err != nil {
		return err
	}
	b.objs = append(b.objs, b.clusterService(sc.Name, sc, ps))
	var published []corev1.ServicePort
	for _, p := range ps {
		if p.published != 0 {
			published = append(published, corev1.ServicePort{
				Name: portName(p), Protocol: p.protocol, Port: p.published, TargetPort: intstr.FromInt32(p.target),
			})
		}
	}
	if len(published) > 0 {
		name := sc.Name + "-published"
		if prev, ok := b.taken[name]; ok {
			return fmt.Errorf("kubernetes: the published Service of %s would be named %q, the name of %s; rename one with AS", sc.Name, name, prev)
		}
		b.taken[name] = "the published Service of " + sc.Name
		m := b.meta(name, sc.Labels)
		m.Labels[LabelName] = sc.Name
		b.objs = append(b.objs, &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: m,
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeLoadBalancer,
				Selector: b.selector(sc.Name),
				Ports:    published,
			},
		})
	}
	d, err := b.deployment(sc, ps)
	if err != nil {
		return err
	}
	b.objs = append(b.objs, d)
	return nil
}

// escapeExpansions escapes each word of a command (see escapeExpansion).
func escapeExpansions(words []string) []string {
	if words == nil {
		return nil
	}
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = escapeExpansion(w)
	}
	return out
}

// escapeExpansion makes s reach the container literally. Kubernetes expands
// $(VAR) in command, args and env values (to another variable of the
// container, such as a secret SET beside it) and reduces $$ to $; compose
// and swarm do neither, so without this one definition would mean different
// things on different targets. A '$' followed by '(' or '$' is doubled;
// any other '$' is left as it is, which Kubernetes keeps as written.
func escapeExpansion(s string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(s[i])
		if s[i] == '$' && i+1 < len(s) && (s[i+1] == '(' || s[i+1] == '$') {
			b.WriteByte('$')
		}
	}
	return b.String()
}

func (b *builder) deployment(sc types.ServiceConfig, ps []port) (*appsv1.Deployment, error) {
	podLabels := b.selector(sc.Name)
	if env := sc.Labels[compile.LabelEnvironment]; env != "" {
		podLabels[LabelEnvironment] = labelValue(env)
	}
	for net := range sc.Networks {
		podLabels[NetworkLabelPrefix+net] = "true"
	}
	c := corev1.Container{
		Name:            sc.Name,
		Image:           sc.Image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            escapeExpansions(sc.Command),
	}
	within, _ := time.ParseDuration(sc.Labels[compile.LabelReadyWithin])
	c.StartupProbe, c.ReadinessProbe = probes(sc.HealthCheck, within)
	for _, k := range slices.Sorted(maps.Keys(sc.Environment)) {
		v := ""
		if p := sc.Environment[k]; p != nil {
			v = *p
		}
		c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: escapeExpansion(v)})
	}
	for _, p := range ps {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: portName(p), ContainerPort: p.target, Protocol: p.protocol})
	}
	var vols []corev1.Volume
	strategy := appsv1.RollingUpdateDeploymentStrategyType
	for i, v := range sc.Volumes {
		name := "v" + strconv.Itoa(i)
		var src corev1.VolumeSource
		switch v.Type {
		case types.VolumeTypeVolume:
			src.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: v.Source, ReadOnly: v.ReadOnly}
			// a ReadWriteOnce claim cannot be held by two pods on two nodes
			// during a rolling update
			strategy = appsv1.RecreateDeploymentStrategyType
		case types.VolumeTypeBind:
			source := v.Source
			if !filepath.IsAbs(source) {
				if b.opts.WorkDir == "" {
					return nil, fmt.Errorf("kubernetes: service %s binds the relative host path %q and no working directory was given; use a named VOLUME", sc.Name, v.Source)
				}
				source = filepath.Join(b.opts.WorkDir, source)
			}
			t := corev1.HostPathDirectoryOrCreate
			src.HostPath = &corev1.HostPathVolumeSource{Path: source, Type: &t}
		default:
			return nil, fmt.Errorf("kubernetes: service %s: volume type %q is not supported", sc.Name, v.Type)
		}
		vols = append(vols, corev1.Volume{Name: name, VolumeSource: src})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: v.Target, ReadOnly: v.ReadOnly})
	}
	one := int32(1)
	no := false
	m := b.meta(sc.Name, sc.Labels)
	m.Labels[LabelName] = sc.Name
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: m,
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: b.selector(sc.Name)},
			Strategy: appsv1.DeploymentStrategy{Type: strategy},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{c},
					Volumes:    vols,
					// compose injects no variables about other services and
					// no API credentials; neither does denv on Kubernetes
					EnableServiceLinks:           &no,
					AutomountServiceAccountToken: &no,
				},
			},
		},
	}, nil
}

// probes are the startup and readiness probes of a READY healthcheck (nil
// without one), both running its command in the container. The startup
// probe runs every second until it succeeds; failureThreshold is WITHIN in
// seconds (the denv.ready-within label, else the start period), so a container not ready within its limit is restarted. The
// readiness probe takes over once it has succeeded: the pod leaves its
// Services' endpoints after ReadyRetries failures in a row. Kubernetes
// probes count whole seconds: the one-second period is the shortest.
func probes(h *types.HealthCheckConfig, within time.Duration) (startup, readiness *corev1.Probe) {
	if h == nil || len(h.Test) < 2 || h.Test[0] != "CMD" {
		return nil, nil
	}
	exec := &corev1.ExecAction{Command: slices.Clone([]string(h.Test[1:]))}
	timeout := int32(1)
	if h.Timeout != nil {
		timeout = max(1, int32(time.Duration(*h.Timeout)/time.Second))
	}
	retries := int32(compile.ReadyRetries)
	if h.Retries != nil {
		retries = int32(*h.Retries)
	}
	if within <= 0 && h.StartPeriod != nil {
		within = time.Duration(*h.StartPeriod)
	}
	threshold := max(1, int32((within+time.Second-1)/time.Second))
	startup = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: exec},
		PeriodSeconds:    1,
		TimeoutSeconds:   timeout,
		SuccessThreshold: 1,
		FailureThreshold: threshold,
	}
	readiness = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: slices.Clone(exec.Command)}},
		PeriodSeconds:    1,
		TimeoutSeconds:   timeout,
		SuccessThreshold: 1,
		FailureThreshold: retries,
	}
	return startup, readiness
}

// aliases creates a Service per network alias that means one service on
// every network it is on.
func (b *builder) aliases(services []string) error {
	owners := map[string][]string{} // alias -> services carrying it
	for _, n := range services {
		for _, nc := range b.p.Services[n].Networks {
			if nc == nil {
				continue
			}
			for _, a := range nc.Aliases {
				if a != n && !slices.Contains(owners[a], n) {
					owners[a] = append(owners[a], n)
				}
			}
		}
	}
	for _, a := range slices.Sorted(maps.Keys(owners)) {
		svcs := owners[a]
		slices.Sort(svcs)
		switch {
		case len(svcs) > 1:
			b.notes = append(b.notes, fmt.Sprintf("alias %q not created: it names %s on different networks", a, strings.Join(svcs, " and ")))
			continue
		case b.taken[a] != "":
			b.notes = append(b.notes, fmt.Sprintf("alias %q of %s not created: it is the name of %s", a, svcs[0], b.taken[a]))
			continue
		case len(validation.IsDNS1035Label(a)) > 0:
			b.notes = append(b.notes, fmt.Sprintf("alias %q of %s not created: not a DNS-1035 label", a, svcs[0]))
			continue
		}
		sc := b.p.Services[svcs[0]]
		ps, err := ports(sc)
		if err != nil {
			return err
		}
		b.taken[a] = "alias of " + sc.Name
		b.objs = append(b.objs, b.clusterService(a, sc, ps))
	}
	return nil
}

// labelValue fits s into a label value: at most 63 characters of
// [A-Za-z0-9._-], beginning and ending with an alphanumeric. The exact
// value is kept in an annotation.
func labelValue(s string) string {
	v := []byte(s)
	for i, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			v[i] = '_'
		}
	}
	out := strings.Trim(string(v), "._-")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "._-")
	}
	return out
}

// YAML renders r as a multi-document YAML stream, its notes as comments
// at the top. Objects are written without their empty status.
func YAML(r *Result) ([]byte, error) {
	var out []byte
	for _, n := range r.Notes {
		out = append(out, "# denv: "+n+"\n"...)
	}
	for _, o := range r.Objects {
		j, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			return nil, err
		}
		delete(m, "status")
		y, err := yaml.Marshal(m)
		if err != nil {
			return nil, err
		}
		out = append(out, "---\n"...)
		out = append(out, y...)
	}
	return out, nil
}
