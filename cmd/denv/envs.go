package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/records"
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
	// Updated is when denv update last changed it; null if never.
	Updated    *time.Time `json:"updated"`
	ClonedFrom string     `json:"cloned_from"`
	// SeededFrom is the snapshot `run --from` filled its volumes from;
	// absent when none.
	SeededFrom string `json:"seeded_from,omitempty"`
	Digest     string `json:"digest"`
	// Params are the values it was run with, secrets masked.
	Params map[string]string `json:"params,omitempty"`
	// Health counts the running containers whose healthcheck has not
	// passed yet (waiting) or failed (unhealthy); absent when the
	// environment is not found on its engine.
	Health *healthJSON `json:"health,omitempty"`
	// RunAlive is set for an incomplete environment whose run still goes on.
	RunAlive bool `json:"run_alive,omitempty"`
}

// healthJSON is the health of an environment's containers.
type healthJSON struct {
	Waiting   int `json:"waiting"`
	Unhealthy int `json:"unhealthy"`
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
	// one Status call per engine, whatever the number of environments
	ids := map[string][]string{}
	for _, rec := range recs {
		ids[rec.Engine] = append(ids[rec.Engine], rec.ID)
	}
	live := map[string]map[string]backend.EnvState{}
	for _, name := range slices.Sorted(maps.Keys(ids)) {
		list := ids[name]
		k, err := engineKindOf(records.Record{ID: list[0], Engine: name})
		if err != nil {
			return err
		}
		if live[name], err = k.open(b).Status(ctx, list); err != nil {
			return err
		}
	}
	list := []envJSON{}
	for _, rec := range recs {
		e, ok := live[rec.Engine][rec.ID]
		if !ok && !opts.all {
			continue
		}
		list = append(list, merge(rec, e, ok))
	}
	if opts.all {
		// an interrupted run has no record saying its engine: each is asked
		status := func(ids []string) (map[string]backend.EnvState, error) { return anyEngineStatus(ctx, b, ids) }
		if list, err = appendIncomplete(list, es, status); err != nil {
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
func merge(rec records.Record, e backend.EnvState, found bool) envJSON {
	j := envJSON{
		ID:         rec.ID,
		Definition: rec.Definition,
		Status:     statusMissing,
		Services:   []string{},
		Ports:      []portJSON{},
		Created:    rec.Created,
		ClonedFrom: rec.ClonedFrom,
		SeededFrom: rec.SeededFrom,
		Digest:     rec.Digest,
		Params:     rec.Params,
	}
	if !rec.Updated.IsZero() {
		u := rec.Updated
		j.Updated = &u
	}
	if rec.Damaged != "" {
		j.Definition = "(damaged record: " + rec.Damaged + ")"
		if !found {
			j.Status = "damaged"
		}
	}
	if !found {
		return j
	}
	j.Status = string(e.Status)
	j.Health = &healthJSON{Waiting: e.Waiting, Unhealthy: e.Unhealthy}
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
	fmt.Fprintln(tw, "ID\tDEFINITION\tSTATUS\tSERVICES\tPORTS\tCREATED\tUPDATED\tCLONED FROM")
	for _, e := range list {
		ports := make([]string, 0, len(e.Ports))
		for _, p := range e.Ports {
			s := p.Service + ":" + strconv.Itoa(int(p.HostPort)) + "->" + strconv.Itoa(int(p.ContainerPort))
			if p.Protocol != "tcp" {
				s += "/" + p.Protocol
			}
			ports = append(ports, s)
		}
		updated := "-"
		if e.Updated != nil {
			updated = e.Updated.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, dash(e.Definition), statusText(e),
			dash(strings.Join(e.Services, ",")), dash(strings.Join(ports, ",")),
			e.Created.Local().Format("2006-01-02 15:04:05"), updated, dash(e.ClonedFrom))
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
