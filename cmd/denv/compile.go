package main

import (
	"fmt"

	"github.com/alebellu/denv/internal/atomicfile"

	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/kube"
	"github.com/alebellu/denv/swarm"
)

type compileOptions struct {
	output string
	name   string
	target string
	sets   []string
}

// renderer is one of compile's output stages: it renders the compose
// project built from the graph, resolving relative bind sources against wd.
type renderer func(p *types.Project, wd string) ([]byte, error)

// targetRenderer is the renderer of --target.
func targetRenderer(target string) (renderer, error) {
	switch target {
	case "compose":
		return func(p *types.Project, _ string) ([]byte, error) { return compile.YAML(p) }, nil
	case "swarm":
		return func(p *types.Project, wd string) ([]byte, error) {
			return swarm.StackFile(p, swarm.Options{WorkDir: wd})
		}, nil
	case "kubernetes":
		return func(p *types.Project, wd string) ([]byte, error) {
			return kube.Manifests(p, kube.Options{WorkDir: wd})
		}, nil
	}
	return nil, fmt.Errorf("compile: unknown --target %q: want compose, swarm or kubernetes", target)
}

func newCompileCmd(a *app) *cobra.Command {
	var opts compileOptions
	cmd := &cobra.Command{
		Use:   "compile DEF",
		Short: "Print the compose project of a definition",
		Long: `Compile resolves DEF (a .denv file, a stored definition or a github: reference)
and prints the compose-spec project that denv run would start.

--target swarm prints a stack file for 'docker stack deploy -c - NAME';
--target kubernetes prints manifests for 'kubectl apply -f -'.`,
		Args:              exactArgs(1, "DEF"),
		ValidArgsFunction: completeDefs(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCompile(cmd, a, opts, args[0])
		},
	}
	cmd.Flags().StringVarP(&opts.output, "output", "o", "", "write to `FILE` instead of standard output (\"-\" is standard output)")
	cmd.Flags().StringVar(&opts.name, "name", "", "compose project `NAME` (default: the environment's name)")
	cmd.Flags().StringVar(&opts.target, "target", "compose", "output `TARGET`: compose, swarm or kubernetes")
	cmd.Flags().StringArrayVar(&opts.sets, "set", nil, "give the definition's parameter a value, `NAME=VALUE` (repeatable)")
	return cmd
}

func runCompile(cmd *cobra.Command, a *app, opts compileOptions, def string) error {
	render, err := targetRenderer(opts.target)
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	p, _, err := a.buildWith(cmd.Context(), def, opts.name, opts.sets)
	if err != nil {
		return err
	}
	out, err := render(p, wd)
	if err != nil {
		return err
	}
	if opts.output == "" || opts.output == "-" {
		_, err = cmd.OutOrStdout().Write(out)
		return err
	}
	return atomicfile.WriteOver(opts.output, out, 0o644, "."+filepath.Base(opts.output)+".")
}

// exactArgs is cobra.ExactArgs with an error that names what is missing.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s: want %s, got %d argument(s); see '%s --help'", cmd.Name(), names, len(args), cmd.CommandPath())
		}
		return nil
	}
}
