package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

type defsOptions struct {
	format string
}

func newDefsCmd(a *app) *cobra.Command {
	var opts defsOptions
	cmd := &cobra.Command{
		Use:   "defs",
		Short: "List the stored definitions",
		Long: `Defs lists the definitions in the local store: name, where each came from,
how many images it uses and when it was added.`,
		Args: exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDefs(cmd, a, opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "table", "output `FORMAT`: table or json")
	cmd.AddCommand(newDefsRmCmd(a))
	return cmd
}

// defJSON is one definition in "denv defs --format json".
type defJSON struct {
	Name     string    `json:"name"`
	Source   string    `json:"source"`
	Digest   string    `json:"sha256"`
	Images   int       `json:"images"`
	Includes []string  `json:"includes"`
	Added    time.Time `json:"added"`
}

func runDefs(cmd *cobra.Command, a *app, opts defsOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	st, err := a.openStore()
	if err != nil {
		return err
	}
	defs, err := st.List()
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if opts.format == "json" {
		list := make([]defJSON, 0, len(defs))
		for _, d := range defs {
			inc := d.Includes
			if inc == nil {
				inc = []string{}
			}
			list = append(list, defJSON{Name: d.Name, Source: d.Origin, Digest: d.Digest, Images: d.Images, Includes: inc, Added: d.Added})
		}
		return writeJSON(out, list)
	}
	// tabwriter writes a cell at a time: buffer, or 1,000 definitions
	// cost ~8,000 write calls.
	bw := bufio.NewWriter(out)
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOURCE\tIMAGES\tADDED")
	for _, d := range defs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", d.Name, d.Origin, d.Images, d.Added.UTC().Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

type defsRmOptions struct {
	force bool
}

func newDefsRmCmd(a *app) *cobra.Command {
	var opts defsRmOptions
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a stored definition",
		Long: `Rm removes a definition from the store. It refuses while another stored
definition includes it, naming them, unless --force is given. Cached remote
files are kept.`,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeDefs(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDefsRm(cmd, a, opts, args[0])
		},
	}
	cmd.Flags().BoolVarP(&opts.force, "force", "f", false, "remove it even while other definitions include it")
	return cmd
}

func runDefsRm(cmd *cobra.Command, a *app, opts defsRmOptions, name string) error {
	st, err := a.openStore()
	if err != nil {
		return err
	}
	if err := st.Remove(name, opts.force); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no stored definition %q (see 'denv defs')", name)
		}
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", name)
	return nil
}

// completeDefs completes the first argument with the names of the stored
// definitions; later arguments, and files, are left to the shell. Commands
// taking a definition (def, defs rm, compile, run) share it.
func completeDefs(a *app) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		st, err := a.openStore()
		if err != nil {
			return nil, cobra.ShellCompDirectiveDefault
		}
		defs, err := st.List()
		if err != nil {
			return nil, cobra.ShellCompDirectiveDefault
		}
		var names []string
		for _, d := range defs {
			if strings.HasPrefix(d.Name, toComplete) {
				names = append(names, d.Name+"\t"+d.Origin)
			}
		}
		return names, cobra.ShellCompDirectiveDefault
	}
}

func checkFormat(f string) error {
	if f != "table" && f != "json" {
		return fmt.Errorf("--format %q: want table or json", f)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
