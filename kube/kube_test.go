package kube_test

import (
	"flag"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/internal/goldentest"
	"github.com/alebellu/denv/kube"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGolden compares the manifests of each case with
// testdata/<case>.yaml and decodes them back strictly.
func TestGolden(t *testing.T) {
	for _, c := range goldentest.Cases {
		t.Run(c.Name, func(t *testing.T) {
			render := func() ([]byte, error) {
				return kube.Manifests(goldentest.Project(t, c.Dir, c.Def), kube.Options{})
			}
			out, err := render()
			if err != nil {
				t.Fatal(err)
			}
			decodeStrict(t, out)
			goldentest.Compare(t, filepath.Join("testdata", c.Name+".yaml"), out, *update, "./kube")
			goldentest.Stable(t, out, render)
		})
	}
}

// decodeStrict decodes every document into its typed struct, failing on
// unknown or duplicate fields, and returns them by kind and name.
func decodeStrict(t *testing.T, out []byte) map[string]any {
	t.Helper()
	objs := map[string]any{}
	// leading "# denv:" notes, then "---\n" before every document
	body := string(out)
	for strings.HasPrefix(body, "#") {
		_, body, _ = strings.Cut(body, "\n")
	}
	body, ok := strings.CutPrefix(body, "---\n")
	if !ok {
		t.Fatalf("output does not start with a document:\n%s", out)
	}
	for i, doc := range strings.Split(body, "\n---\n") {
		var tm struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var o any
		switch tm.Kind {
		case "Deployment":
			o = &appsv1.Deployment{}
		case "Service":
			o = &corev1.Service{}
		case "PersistentVolumeClaim":
			o = &corev1.PersistentVolumeClaim{}
		case "NetworkPolicy":
			o = &networkingv1.NetworkPolicy{}
		default:
			t.Fatalf("document %d: unexpected kind %q", i, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), o); err != nil {
			t.Fatalf("document %d (%s) does not decode strictly: %v\n%s", i, tm.Kind, err, doc)
		}
		var name string
		switch o := o.(type) {
		case *appsv1.Deployment:
			name = o.Name
		case *corev1.Service:
			name = o.Name
		case *corev1.PersistentVolumeClaim:
			name = o.Name
		case *networkingv1.NetworkPolicy:
			name = o.Name
		}
		key := tm.Kind + "/" + name
		if _, dup := objs[key]; dup {
			t.Fatalf("%s twice", key)
		}
		objs[key] = o
	}
	return objs
}

// TestStrictDecodeRejectsUnknownFields keeps decodeStrict honest.
func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	doc := "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  clusterAddress: None\n"
	if err := yaml.UnmarshalStrict([]byte(doc), &corev1.Service{}); err == nil {
		t.Fatal("an unknown field decoded")
	}
}

// admits reports whether the policies let a pod with labels from reach a
// pod with labels to: some policy selects to and admits from (Kubernetes
// policies add up; a pod no policy selects would admit everyone).
func admits(pols []*networkingv1.NetworkPolicy, from, to map[string]string) bool {
	selected := false
	for _, p := range pols {
		if !matches(p.Spec.PodSelector.MatchLabels, to) {
			continue
		}
		selected = true
		for _, r := range p.Spec.Ingress {
			if len(r.From) == 0 {
				continue // published ports: open to all, not what we check here
			}
			for _, peer := range r.From {
				if peer.PodSelector != nil && matches(peer.PodSelector.MatchLabels, from) {
					return true
				}
			}
		}
	}
	return !selected
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// policiesAndPods picks the NetworkPolicies and the pod labels of each
// Deployment out of decoded objects.
func policiesAndPods(objs map[string]any) ([]*networkingv1.NetworkPolicy, map[string]map[string]string) {
	var pols []*networkingv1.NetworkPolicy
	pods := map[string]map[string]string{}
	for _, o := range objs {
		switch o := o.(type) {
		case *networkingv1.NetworkPolicy:
			pols = append(pols, o)
		case *appsv1.Deployment:
			pods[o.Name] = o.Spec.Template.Labels
		}
	}
	return pols, pods
}

// TestEncapsulation evaluates the seed's NetworkPolicies on its pods'
// labels: the expert system reaches web (through web-env) but neither
// web-env's database nor the worker; web reaches its db and the worker.
// (The worker, exposed by worker-env, is on web-env's network, so web-env's
// db may reach it, as on compose.)
func TestEncapsulation(t *testing.T) {
	out, err := kube.Manifests(goldentest.Project(t, "..", "examples/expert-system-env.denv"), kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeStrict(t, out)
	pols, pods := policiesAndPods(objs)
	names := make([]string, 0, len(pods))
	for n := range pods {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"expert-system", "web-env-db", "web-env-web", "worker-env-worker"}; !slices.Equal(names, want) {
		t.Fatalf("deployments %v, want %v", names, want)
	}
	want := map[[2]string]bool{
		{"expert-system", "web-env-web"}:       true,
		{"expert-system", "web-env-db"}:        false,
		{"expert-system", "worker-env-worker"}: false,
		{"web-env-web", "web-env-db"}:          true,
		{"web-env-web", "worker-env-worker"}:   true,
		{"worker-env-worker", "expert-system"}: false,
		{"web-env-db", "expert-system"}:        false,
	}
	for pair, ok := range want {
		if got := admits(pols, pods[pair[0]], pods[pair[1]]); got != ok {
			t.Errorf("%s -> %s admitted = %v, want %v", pair[0], pair[1], got, ok)
		}
	}
	// the names web and the expert system dial resolve in the namespace
	for _, n := range []string{"web-env", "db", "worker-env"} {
		if _, ok := objs["Service/"+n]; !ok {
			t.Errorf("no Service %q", n)
		}
	}
}

// TestErrors: names Kubernetes cannot hold and relative binds are one-line
// errors.
func TestErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"IMAGE ex/web AS web_1\n", "not a DNS-1035 label"},
		{"IMAGE ex/web VOLUME ./data:/data\n", "relative host path"},
	} {
		dir := goldentest.Dir(t, map[string]string{"e.denv": c.body})
		p := goldentest.ProjectWith(t, dir, "e.denv", compile.Options{BaseDir: dir})
		_, err := kube.Manifests(p, kube.Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line with %q", c.body, err, c.want)
		}
	}
}

// TestBindWithWorkDir: a relative bind becomes a hostPath under the
// working directory.
func TestBindWithWorkDir(t *testing.T) {
	dir := goldentest.Dir(t, map[string]string{"e.denv": "IMAGE ex/web VOLUME ./data:/data:ro\n"})
	p := goldentest.ProjectWith(t, dir, "e.denv", compile.Options{BaseDir: dir})
	out, err := kube.Manifests(p, kube.Options{WorkDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	d := decodeStrict(t, out)["Deployment/web"].(*appsv1.Deployment)
	vol := d.Spec.Template.Spec.Volumes[0]
	if vol.HostPath == nil || vol.HostPath.Path != filepath.Join(dir, "data") || !d.Spec.Template.Spec.Containers[0].VolumeMounts[0].ReadOnly {
		t.Errorf("volume %+v, mounts %+v", vol, d.Spec.Template.Spec.Containers[0].VolumeMounts)
	}
}

// TestAmbiguousAlias: "db" means a-db on a's network and b-db on b's; a
// namespace cannot hold both, so no Service "db" is made and a comment
// says why. Each db stays reachable only from its own environment.
func TestAmbiguousAlias(t *testing.T) {
	dir := goldentest.Dir(t, map[string]string{
		"e.denv": "ENV a\nENV b\nIMAGE ex/app LINK a, b\n",
		"a.denv": "IMAGE ex/db\nIMAGE ex/api LINK db\nEXPOSE api\n",
		"b.denv": "IMAGE ex/db\nIMAGE ex/api LINK db\nEXPOSE api\n",
	})
	out, err := kube.Manifests(goldentest.Project(t, dir, "e.denv"), kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "# denv: alias \"api\" not created: it names a-api and b-api on different networks\n# denv: alias \"db\" not created: it names a-db and b-db on different networks\n") {
		t.Errorf("notes missing:\n%s", out)
	}
	objs := decodeStrict(t, out)
	if _, ok := objs["Service/db"]; ok {
		t.Error("ambiguous alias db was created")
	}
	for _, n := range []string{"a", "b", "a-db", "b-db"} {
		if _, ok := objs["Service/"+n]; !ok {
			t.Errorf("no Service %s", n)
		}
	}
	pols, pods := policiesAndPods(objs)
	for pair, want := range map[[2]string]bool{
		{"a-api", "a-db"}: true, {"b-api", "a-db"}: false, {"app", "a-db"}: false,
		{"app", "a-api"}: true, {"app", "b-api"}: true,
		// both exposed into the root network, as on compose
		{"a-api", "b-api"}: true, {"a-db", "b-api"}: false,
	} {
		if got := admits(pols, pods[pair[0]], pods[pair[1]]); got != want {
			t.Errorf("%s -> %s admitted = %v, want %v", pair[0], pair[1], got, want)
		}
	}
}

// TestProjectNameClash: the root's NetworkPolicy is named after the
// project, so a project named like an included environment is refused.
func TestProjectNameClash(t *testing.T) {
	p := goldentest.ProjectWith(t, "../testdata/golden", "diamond.denv", compile.Options{Name: "left"})
	if _, err := kube.Manifests(p, kube.Options{}); err == nil || !strings.Contains(err.Error(), "--name") {
		t.Errorf("error %v, want one naming --name", err)
	}
}

// TestDollarEscaped: Kubernetes expands $(VAR) in args and env values,
// which turned `CMD "echo $(TOKEN)"` into an echo of the secret TOKEN. The
// golden file shows the escaped manifests; expanding them the way the
// kubelet does must give back exactly the compiled (compose) values.
func TestDollarEscaped(t *testing.T) {
	p := goldentest.Project(t, "testdata", "dollar.denv")
	out, err := kube.Manifests(p, kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	goldentest.Compare(t, filepath.Join("testdata", "dollar.yaml"), out, *update, "./kube")
	objs := decodeStrict(t, out)
	d, ok := objs["Deployment/app"].(*appsv1.Deployment)
	if !ok {
		t.Fatalf("no Deployment/app in\n%s", out)
	}
	c := d.Spec.Template.Spec.Containers[0]
	vars := map[string]string{}
	for _, e := range c.Env {
		vars[e.Name] = e.Value
	}
	sc := p.Services["app"]
	for i, a := range c.Args {
		if got, want := kubeExpand(a, vars), sc.Command[i]; got != want {
			t.Errorf("arg %d expands to %q, want %q", i, got, want)
		}
	}
	for _, e := range c.Env {
		if got, want := kubeExpand(e.Value, vars), *sc.Environment[e.Name]; got != want {
			t.Errorf("env %s expands to %q, want %q", e.Name, got, want)
		}
	}
}

// kubeExpand is the kubelet's expansion of command, args and env values
// (k8s.io/kubernetes third_party/forked/golang/expansion): $$ is $, $(NAME)
// of a known variable is its value, anything else stays as written.
func kubeExpand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i++
		case next == '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// TestReadyProbes: a READY service's container gets a startup probe whose
// failureThreshold*periodSeconds is its WITHIN limit and a readiness probe
// running the same command; a service without READY gets neither.
func TestReadyProbes(t *testing.T) {
	out, err := kube.Manifests(goldentest.Project(t, "../testdata/golden", "ready.denv"), kube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeStrict(t, out)
	for name, want := range map[string]struct {
		cmd    []string
		within int32 // seconds
	}{
		"db":       {[]string{"/app", "health"}, 60},
		"queue":    {[]string{"probe", "--port", "5672", "a b"}, 90},
		"web":      {[]string{"/app", "health"}, 1},
		"store-db": {[]string{"/app", "health"}, 120},
		"plain":    {},
	} {
		c := objs["Deployment/"+name].(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
		if want.cmd == nil {
			if c.StartupProbe != nil || c.ReadinessProbe != nil {
				t.Errorf("%s: probes without READY", name)
			}
			continue
		}
		s, r := c.StartupProbe, c.ReadinessProbe
		if s == nil || r == nil || s.Exec == nil || r.Exec == nil {
			t.Fatalf("%s: startup %+v readiness %+v", name, s, r)
		}
		if !slices.Equal(s.Exec.Command, want.cmd) || !slices.Equal(r.Exec.Command, want.cmd) {
			t.Errorf("%s: commands %q %q, want %q", name, s.Exec.Command, r.Exec.Command, want.cmd)
		}
		if s.FailureThreshold*s.PeriodSeconds != want.within {
			t.Errorf("%s: startup probe covers %ds, want %ds", name, s.FailureThreshold*s.PeriodSeconds, want.within)
		}
		if r.PeriodSeconds != 1 || r.FailureThreshold != compile.ReadyRetries {
			t.Errorf("%s: readiness probe %+v", name, r)
		}
	}
}
