package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/envs"
)

// statusMissing is the status of a recorded environment that has no
// container on the engine any more (removed outside denv).
const statusMissing = "missing"

type envsOptions struct {
	all    bool
	format string
}

func newEnvsCmd(a *app) *cobra.Command {
	var opts envsOptions
	cmd := &cobra.Command{
		Use:   "envs [--all] [--format table|json]",
		Short: "List the environments denv started",
		Long: `Envs lists the environments denv started and that still have containers:
id, definition, status (running, stopped or partial), services, published
ports and creation time. With --all it also lists those whose containers
are gone (removed outside denv), with status "missing"; 'denv rm ID' or
'denv start ID' deals with them; and those whose run did not record them,
with status "incomplete": "incomplete (starting)" while their run still
goes on, else killed midway ('denv rm --force ID' removes what it left). Compose projects not started by denv are
not listed ('docker compose ls' shows them).`,
		Args: exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEnvs(cmd, a, opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.all, "all", "a", false, "also list environments whose containers are gone, and incomplete ones")
	cmd.Flags().StringVar(&opts.format, "format", "table", "output `FORMAT`: table or json")
	return cmd
}

// envJSON is one environment in `denv envs --format json`.
type envJSON struct {
	ID         string     `json:"id"`
	Definition string     `json:"definition"`
	Status     string     `json:"status"`
	Services   []string   `json:"services"`
	Ports      []portJSON `json:"ports"`
	Created    time.Time  `json:"created"`
	ClonedFrom string     `json:"cloned_from"`
	Digest     string     `json:"digest"`
	// RunAlive is set for an incomplete environment whose run still goes on.
	RunAlive bool `json:"run_alive,omitempty"`
}

type portJSON struct {
	Service       string `json:"service"`
	ContainerPort uint16 `json:"container_port"`
	HostPort      uint16 `json:"host_port"`
	Protocol      string `json:"protocol"`
}

func runEnvs(cmd *cobra.Command, a *app, opts envsOptions) error {
	if opts.format != "table" && opts.format != "json" {
		return fmt.Errorf("envs: unknown format %q: want table or json", opts.format)
	}
	ctx := cmd.Context()
	b, err := a.backend(ctx, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	es, err := a.openEnvs()
	if err != nil {
		return err
	}
	recs, err := es.List()
	if err != nil {
		return err
	}
	running, err := b.List(ctx) // one call, whatever the number of envs
	if err != nil {
		return err
	}
	live := make(map[string]backend.Env, len(running))
	for _, e := range running {
		live[e.Name] = e
	}
	list := []envJSON{}
	for _, rec := range recs {
		e, ok := live[rec.ID]
		if rec.Engine == engineSwarm {
			if e, ok, err = b.StackEnv(ctx, rec.ID); err != nil {
				return err
			}
		}
		if !ok && !opts.all {
			continue
		}
		list = append(list, merge(rec, e, ok))
	}
	if opts.all {
		if list, err = appendIncomplete(list, es, live); err != nil {
			return err
		}
	}
	if opts.format == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	return envsTable(cmd.OutOrStdout(), list)
}

// merge describes rec with its state on the engine (e, when found).
func merge(rec envs.Record, e backend.Env, found bool) envJSON {
	j := envJSON{
		ID:         rec.ID,
		Definition: rec.Definition,
		Status:     statusMissing,
		Services:   []string{},
		Ports:      []portJSON{},
		Created:    rec.Created,
		ClonedFrom: rec.ClonedFrom,
		Digest:     rec.Digest,
	}
	if !found {
		return j
	}
	j.Status = string(e.Status)
	j.Services = append(j.Services, e.Services...)
	for _, p := range e.Ports {
		j.Ports = append(j.Ports, portJSON{Service: p.Service, ContainerPort: p.ContainerPort, HostPort: p.HostPort, Protocol: p.Protocol})
	}
	return j
}

func envsTable(w io.Writer, list []envJSON) error {
	// tabwriter writes a few times per cell: one write call at the end
	bw := bufio.NewWriter(w)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDEFINITION\tSTATUS\tSERVICES\tPORTS\tCREATED\tCLONED FROM")
	for _, e := range list {
		ports := make([]string, 0, len(e.Ports))
		for _, p := range e.Ports {
			s := p.Service + ":" + strconv.Itoa(int(p.HostPort)) + "->" + strconv.Itoa(int(p.ContainerPort))
			if p.Protocol != "tcp" {
				s += "/" + p.Protocol
			}
			ports = append(ports, s)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, dash(e.Definition), statusText(e),
			dash(strings.Join(e.Services, ",")), dash(strings.Join(ports, ",")),
			e.Created.Local().Format("2006-01-02 15:04:05"), dash(e.ClonedFrom))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
