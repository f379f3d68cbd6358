package plan_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/plan"
	"github.com/alebellu/denv/resolve"
)

// projectName is the environment id every script and benchmark plans for.
const projectName = "env"

// updating reports whether -update was given (go test ./plan -update
// rewrites the golden files: the plan.txt and plan.json sections of the
// scripts). The flag is registered by gotest.tools, which compose's
// packages import, so it is looked up, not declared.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// TestScript runs the plan scenarios of testdata/script, without Docker.
// Each script holds a definition as it was first run (the archive's
// top-level files) and its edit (new/), compiles both in the same
// directory as `denv run` and `denv update` do (denvcompile), plans the
// update (denvplan) and compares the text and JSON forms with the
// golden sections plan.txt and plan.json; `stdout` lines state the point
// of the case, so that a golden accepted with -update cannot hide a
// wrong plan.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: updating(),
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"denvcompile": cmdCompile,
			"denvplan":    cmdPlan,
		},
	})
}

// compileProject resolves and compiles the definition root for
// environment projectName with dir as the working directory, as `denv run`
// and `denv update` do from there (cmd/denv's buildWith, without the
// definition store: the scripts use local files).
func compileProject(dir, root string) (*types.Project, error) {
	g, err := resolve.New(resolve.Options{WorkDir: dir}).Resolve(context.Background(), root)
	if err != nil {
		return nil, err
	}
	return compile.Compile(g, compile.Options{Name: projectName, BaseDir: dir})
}

// cmdCompile is `denvcompile DEF OUT`: DEF compiled from the script's
// current directory into the compose YAML the local engine records
// (backend/compose's Render is compile.YAML), written to OUT.
func cmdCompile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: denvcompile DEF OUT")
	}
	err := func() error {
		p, err := compileProject(ts.MkAbs("."), ts.MkAbs(args[0]))
		if err != nil {
			return err
		}
		yaml, err := compile.YAML(p)
		if err != nil {
			return err
		}
		return os.WriteFile(ts.MkAbs(args[1]), yaml, 0o644)
	}()
	result(ts, neg, err)
}

// cmdPlan is `denvplan [-format text|json] [-loaded] OLD NEW`: the plan of
// updating environment projectName from the compose YAML OLD (the
// record's) to NEW, both working in the script's current directory,
// computed as the local engine's Plan does without the engine
// (backend.LoadPlanned, then plan.Compute with no live containers and no
// image ports to publish) and printed as `denv update` prints it (Text, or
// JSON with -format json). With -loaded the record also keeps OLD as
// `denv run` loaded it (loaded.json, backend.EncodeLoaded), and the plan
// restores it from there, as `denv update` of a recent record does.
//
// It fails when the JSON form does not decode to the plan or when planning
// again renders other bytes.
func cmdPlan(ts *testscript.TestScript, neg bool, args []string) {
	fs := flag.NewFlagSet("denvplan", flag.ContinueOnError)
	fs.SetOutput(ts.Stderr())
	format := fs.String("format", "text", "text or json")
	loaded := fs.Bool("loaded", false, "restore OLD from its loaded form")
	if err := fs.Parse(args); err != nil || fs.NArg() != 2 || (*format != "text" && *format != "json") {
		ts.Fatalf("usage: denvplan [-format text|json] [-loaded] OLD NEW")
	}
	ctx := context.Background()
	deployment := func(file string) backend.Deployment {
		yaml, err := os.ReadFile(ts.MkAbs(file))
		ts.Check(err)
		return backend.Deployment{ID: projectName, Project: yaml, WorkDir: ts.MkAbs(".")}
	}
	old, new := deployment(fs.Arg(0)), deployment(fs.Arg(1))
	render := func() ([]byte, error) {
		rec := old
		if *loaded {
			lp, err := backend.Load(ctx, rec.Project, rec.ID, rec.WorkDir)
			if err != nil {
				return nil, err
			}
			rec.Loaded = backend.EncodeLoaded(lp, rec.Project)
		}
		op, np, _, err := backend.LoadPlanned(ctx, rec, new)
		if err != nil {
			return nil, err
		}
		p, err := plan.Compute(op, np, nil)
		if err != nil {
			return nil, err
		}
		js, err := p.JSON()
		if err != nil {
			return nil, err
		}
		var back plan.Plan
		if err := json.Unmarshal(js, &back); err != nil {
			return nil, err
		}
		if !reflect.DeepEqual(&back, p) {
			return nil, errors.New("denvplan: the JSON form does not decode to the plan")
		}
		if *format == "json" {
			return js, nil
		}
		return p.Text(), nil
	}
	out, err := render()
	if err == nil {
		var again []byte
		again, err = render()
		if err == nil && string(again) != string(out) {
			err = fmt.Errorf("denvplan: two plans of the same projects differ:\n%s\n%s", out, again)
		}
	}
	if err == nil {
		_, err = ts.Stdout().Write(out)
	}
	result(ts, neg, err)
}

// result ends a command as testscript expects: an error fails the
// script unless the command was negated (! cmd), when it goes to stderr.
func result(ts *testscript.TestScript, neg bool, err error) {
	switch {
	case err != nil && neg:
		fmt.Fprintln(ts.Stderr(), err)
	case err != nil:
		ts.Fatalf("%v", err)
	case neg:
		ts.Fatalf("unexpected success")
	}
}
