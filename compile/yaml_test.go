package compile_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/resolve"
)

func load(t *testing.T, wd string, yaml []byte) *types.Project {
	t.Helper()
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: yaml}},
		Environment: types.Mapping{"HOME": "/nowhere"},
	}, func(o *loader.Options) { o.SetProjectName("p", true) })
	if err != nil {
		t.Fatalf("loader: %v\n%s", err, yaml)
	}
	return p
}

// TestYAMLMatchesCompose loads denv's YAML and compose-go's own marshalling
// of the same project, and wants the same project from both, for every
// golden case: the hand-written writer drops nothing and quotes right.
func TestYAMLMatchesCompose(t *testing.T) {
	cases, _ := filepath.Glob(filepath.Join(goldenDir, "[^e]*.denv"))
	wd, _ := filepath.Abs(goldenDir)
	for _, c := range cases {
		g, err := resolve.New(resolve.Options{WorkDir: wd}).Resolve(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		p, err := compile.Compile(g, compile.Options{BaseDir: wd})
		if err != nil {
			t.Fatal(err)
		}
		ours, err := compile.YAML(p)
		if err != nil {
			t.Fatal(err)
		}
		escapeDollars(p)
		theirs, err := p.MarshalYAML()
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(load(t, wd, theirs), load(t, wd, ours)); d != "" {
			t.Errorf("%s: compose reads denv's YAML differently (-compose-go +denv):\n%s", c, d)
		}
	}
}

// escapeDollars doubles '$' in the values denv writes from the user's
// words, as compile.YAML does and compose-go's own marshalling does not.
func escapeDollars(p *types.Project) {
	esc := func(s string) string { return strings.ReplaceAll(s, "$", "$$") }
	for name, svc := range p.Services {
		for k, v := range svc.Environment {
			if v != nil {
				e := esc(*v)
				svc.Environment[k] = &e
			}
		}
		for i, w := range svc.Command {
			svc.Command[i] = esc(w)
		}
		for k, v := range svc.Labels {
			svc.Labels[k] = esc(v)
		}
		p.Services[name] = svc
	}
}

// TestYAMLQuoting round-trips awkward strings through compose's loader:
// each must come back exactly, '$' included (no interpolation).
func TestYAMLQuoting(t *testing.T) {
	values := []string{"", "true", "no", "~", "null", "1", "0x10", "1e3", "-", "- a", ": x", "a: b", "#c", "a #b",
		"'q'", `"dq"`, `back\slash`, "tab\there", "new\nline", "$HOME", "${X:-y}", "$$", "ünïcode", " lead", "trail ", "[a]", "{a}", "*x", "&y", "!t", "%p", "@a", "`b`", "|", ">"}
	svc := types.ServiceConfig{Name: "s"}
	svc.Image = "ex/s"
	svc.Environment = types.MappingWithEquals{}
	for i, v := range values {
		svc.Environment["V"+strings.Repeat("X", i)] = &v
	}
	svc.Command = values
	p := &types.Project{Name: "q", Services: types.Services{"s": svc}}
	out, err := compile.YAML(p)
	if err != nil {
		t.Fatal(err)
	}
	got := load(t, t.TempDir(), out).Services["s"]
	for i, v := range values {
		if g := got.Environment["V"+strings.Repeat("X", i)]; g == nil || *g != v {
			t.Errorf("environment value %q came back as %v", v, g)
		}
		if got.Command[i] != v {
			t.Errorf("command word %q came back as %q", v, got.Command[i])
		}
	}
}
