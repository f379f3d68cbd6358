package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/resolve"
)

type defOptions struct {
	all    bool
	graph  bool
	format string
}

func newDefCmd(a *app) *cobra.Command {
	var opts defOptions
	cmd := &cobra.Command{
		Use:   "def DEF",
		Short: "Show what a definition uses",
		Long: `Def shows the images DEF (a stored definition, a .denv file or a github:
reference) uses, those of included environments too, each once. With -a it also
shows volumes, links, exposed services and the tree of included environments;
with --graph it prints the environment graph as Graphviz DOT instead
(environments as clusters, LINKs as edges, ENV includes as dashed edges).`,
		Args:              exactArgs(1, "DEF"),
		ValidArgsFunction: completeDefs(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDef(cmd, a, opts, args[0])
		},
	}
	cmd.Flags().BoolVarP(&opts.all, "all", "a", false, "also show volumes, links, exposed services and included environments")
	cmd.Flags().BoolVar(&opts.graph, "graph", false, "print the environment graph as Graphviz DOT")
	cmd.Flags().StringVar(&opts.format, "format", "table", "output `FORMAT`: table or json")
	return cmd
}

func runDef(cmd *cobra.Command, a *app, opts defOptions, def string) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	st, err := a.openStore()
	if err != nil {
		return err
	}
	ropts, err := a.resolveOptions(st)
	if err != nil {
		return err
	}
	ropts.ParamsOptional = true // parameters are listed, not needed
	g, err := resolve.New(ropts).Resolve(cmd.Context(), def)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if opts.graph {
		_, err := io.WriteString(out, dot(g))
		return err
	}
	info := describe(g, opts.all)
	if opts.format == "json" {
		return writeJSON(out, info)
	}
	return info.writeTable(out)
}

// defInfo is what "denv def" shows; its JSON form is the --format json
// output. The -a parts are left out without -a.
type defInfo struct {
	Definition string     `json:"definition"`
	Images     []imageUse `json:"images"`
	Params     []paramUse `json:"params,omitempty"`
	Volumes    []volInfo  `json:"volumes,omitempty"`
	Links      []linkInfo `json:"links,omitempty"`
	Exposed    []expInfo  `json:"exposed,omitempty"`
	Tree       *envTree   `json:"tree,omitempty"`
	// HostBinds: added with --allow-host-binds (shown with -a)
	HostBinds bool `json:"allow_host_binds,omitempty"`
}

// paramUse is a parameter of one environment instance of the graph (see
// resolve.ParamList).
type paramUse = resolve.ParamInfo

type imageUse struct {
	Image        string   `json:"image"`
	Environments []string `json:"environments"`
}

type volInfo struct {
	Environment string `json:"environment"`
	Service     string `json:"service"`
	Kind        string `json:"kind"` // "volume" or "bind"
	Source      string `json:"source"`
	Target      string `json:"target"`
	ReadOnly    bool   `json:"read_only"`
}

type linkInfo struct {
	Environment string `json:"environment"`
	Service     string `json:"service"`
	Target      string `json:"target"` // a service, or "env NAME"
}

type expInfo struct {
	Environment string `json:"environment"`
	Name        string `json:"name"`
	Service     string `json:"service"` // the compose service it is
}

type envTree struct {
	Name       string     `json:"name"`
	Definition string     `json:"definition"`
	Includes   []*envTree `json:"includes"`
}

func describe(g *resolve.Graph, all bool) *defInfo {
	info := &defInfo{Definition: g.Root.Def, Images: graphImages(g.Envs), Params: resolve.ParamList(g)}
	if !all {
		return info
	}
	for _, e := range g.Envs {
		for _, s := range e.Services {
			for _, v := range s.Volumes {
				vi := volInfo{Environment: e.Name, Service: s.Name, Kind: "volume", Source: v.Name, Target: v.Target, ReadOnly: v.ReadOnly}
				if v.Kind == resolve.BindMount {
					vi.Kind, vi.Source = "bind", v.Source
				}
				info.Volumes = append(info.Volumes, vi)
			}
			for _, l := range s.Links {
				li := linkInfo{Environment: e.Name, Service: s.Name}
				if l.Service != nil {
					li.Target = l.Service.Name
				} else {
					li.Target = "env " + l.Env.Name
				}
				info.Links = append(info.Links, li)
			}
		}
		for _, x := range e.Exposed {
			info.Exposed = append(info.Exposed, expInfo{Environment: e.Name, Name: x.Name, Service: compile.ServiceName(g, x.Service)})
		}
	}
	var tree func(e *resolve.Env) *envTree
	tree = func(e *resolve.Env) *envTree {
		t := &envTree{Name: e.Name, Definition: e.Def, Includes: []*envTree{}}
		for _, inc := range e.Includes {
			t.Includes = append(t.Includes, tree(inc.Env))
		}
		return t
	}
	info.Tree = tree(g.Root)
	info.HostBinds = g.HostBinds
	return info
}

func (info *defInfo) writeTable(w io.Writer) error {
	if info.HostBinds {
		fmt.Fprintln(w, "host binds: allowed (added with --allow-host-binds)")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tENVIRONMENTS")
	for _, im := range info.Images {
		fmt.Fprintf(tw, "%s\t%s\n", im.Image, strings.Join(im.Environments, ", "))
	}
	if info.Tree == nil {
		return tw.Flush()
	}
	if len(info.Params) > 0 {
		fmt.Fprintln(tw, "\nPARAMETER\tENVIRONMENT\tDEFAULT\tVALUE")
	}
	for _, p := range info.Params {
		def := "(required)"
		if p.Default != nil {
			def = *p.Default
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Environment, def, dash(p.Value))
	}
	fmt.Fprintln(tw, "\nVOLUME\tKIND\tSERVICE\tTARGET")
	for _, v := range info.Volumes {
		ro := ""
		if v.ReadOnly {
			ro = " (read-only)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s%s\n", v.Source, v.Kind, v.Environment, v.Service, v.Target, ro)
	}
	fmt.Fprintln(tw, "\nLINK FROM\tTO")
	for _, l := range info.Links {
		fmt.Fprintf(tw, "%s/%s\t%s\n", l.Environment, l.Service, l.Target)
	}
	fmt.Fprintln(tw, "\nEXPOSED\tBY\tSERVICE")
	for _, x := range info.Exposed {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", x.Name, x.Environment, x.Service)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nINCLUDES")
	var walk func(t *envTree, prefix, branch string)
	walk = func(t *envTree, prefix, branch string) {
		fmt.Fprintf(w, "%s%s%s (%s)\n", prefix, branch, t.Name, t.Definition)
		switch branch {
		case "├── ":
			prefix += "│   "
		case "└── ":
			prefix += "    "
		}
		for i, c := range t.Includes {
			b := "├── "
			if i == len(t.Includes)-1 {
				b = "└── "
			}
			walk(c, prefix, b)
		}
	}
	walk(info.Tree, "", "")
	return nil
}

// dot renders g in Graphviz DOT: one cluster per environment holding its
// services, LINKs as solid edges (to a linked environment's cluster), ENV
// includes as dashed edges between clusters. Every cluster has an invisible
// anchor node so that environments without services can be linked to.
// The output depends only on g, in graph order.
func dot(g *resolve.Graph) string {
	var b strings.Builder
	q := strconv.Quote
	anchor := func(e *resolve.Env) string { return q("env:" + e.Name) }
	cluster := func(e *resolve.Env) string { return q("cluster_" + e.Name) }
	b.WriteString("digraph denv {\n\tcompound=true;\n\tnode [shape=box];\n")
	for _, e := range g.Envs {
		fmt.Fprintf(&b, "\tsubgraph %s {\n\t\tlabel=%s;\n", cluster(e), q(e.Name+" ("+e.Def+")"))
		fmt.Fprintf(&b, "\t\t%s [shape=point, style=invis];\n", anchor(e))
		for _, s := range e.Services {
			fmt.Fprintf(&b, "\t\t%s [label=%s];\n", q(compile.ServiceName(g, s)), q(s.Name+"\n"+s.Image))
		}
		b.WriteString("\t}\n")
	}
	for _, e := range g.Envs {
		for _, s := range e.Services {
			for _, l := range s.Links {
				if l.Service != nil {
					fmt.Fprintf(&b, "\t%s -> %s;\n", q(compile.ServiceName(g, s)), q(compile.ServiceName(g, l.Service)))
				} else {
					fmt.Fprintf(&b, "\t%s -> %s [lhead=%s];\n", q(compile.ServiceName(g, s)), anchor(l.Env), cluster(l.Env))
				}
			}
		}
		for _, inc := range e.Includes {
			fmt.Fprintf(&b, "\t%s -> %s [style=dashed, ltail=%s, lhead=%s];\n", anchor(e), anchor(inc.Env), cluster(e), cluster(inc.Env))
		}
	}
	b.WriteString("}\n")
	return b.String()
}
