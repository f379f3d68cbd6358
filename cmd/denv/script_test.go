package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test binary act as the denv command inside scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"denv": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScript runs the CLI scenarios in testdata/script, one per file.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Cmds:                storeCmds(),
		Setup: func(env *testscript.Env) error {
			// a private definition store and home for every script
			env.Setenv("DENV_HOME", env.WorkDir+"/.denv-home")
			env.Setenv("HOME", env.WorkDir+"/home")
			return nil
		},
	})
}
