package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/compile"
)

// readyLogLines is how many of its last log lines a service that was not
// ready in time shows in the error.
const readyLogLines = 10

// readySlack is added to the longest READY limit of a project to bound the
// whole wait: the healthcheck itself turns the service unhealthy a little
// after its limit (compile.ReadyRetries checks), which is what normally
// ends a failed wait.
const readySlack = 10 * time.Second

// imageHealthcheck reports whether image ref, when present locally,
// declares a HEALTHCHECK that is not NONE. A missing image has none (it
// is pulled by Up, after this question was asked).
func (b *Backend) imageHealthcheck(ctx context.Context, ref string) (bool, error) {
	res, err := b.api.ImageInspect(ctx, ref)
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("cannot inspect image %s: %s", ref, oneLine(err))
	}
	hc := res.Config
	if hc == nil || hc.Healthcheck == nil || len(hc.Healthcheck.Test) == 0 {
		return false, nil
	}
	return hc.Healthcheck.Test[0] != "NONE", nil
}

// prepareReadiness applies the runtime half of LANGUAGE.md section 8 to
// project: the depends_on of every service labelled
// [compile.LabelWaitImageHealth] on a listed service whose image declares
// a HEALTHCHECK becomes service_healthy. It returns the services Up waits
// for, sorted: those with a healthcheck of their own (READY) or from
// their image, unless the project disables it.
func (b *Backend) prepareReadiness(ctx context.Context, project *types.Project) ([]string, error) {
	// one inspect per service without READY, all at once
	names := project.ServiceNames()
	hcs := make([]bool, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		if s := project.Services[name]; s.HealthCheck == nil {
			wg.Go(func() { hcs[i], errs[i] = b.imageHealthcheck(ctx, s.Image) })
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	imageHC := map[string]bool{}
	for i, name := range names {
		imageHC[name] = hcs[i]
	}
	var waitFor []string
	for _, name := range project.ServiceNames() {
		s := project.Services[name]
		if hc := s.HealthCheck; (hc != nil && !hc.Disable) || imageHC[name] {
			waitFor = append(waitFor, name)
		}
		list := s.Labels[compile.LabelWaitImageHealth]
		if list == "" {
			continue
		}
		changed := false
		for dep := range strings.SplitSeq(list, ",") {
			d, ok := s.DependsOn[dep]
			if !ok || !imageHC[dep] || d.Condition == types.ServiceConditionHealthy {
				continue
			}
			d.Condition = types.ServiceConditionHealthy
			s.DependsOn[dep] = d
			changed = true
		}
		if changed {
			project.Services[name] = s
		}
	}
	return waitFor, nil
}

// readyTimeout bounds the wait for the services of waitFor: the longest
// READY limit among them plus [readySlack], or [DefaultWaitTimeout] when
// one of them has no READY (its healthcheck comes from its image) or the
// caller asked for more.
func readyTimeout(project *types.Project, waitFor []string, atLeast time.Duration) time.Duration {
	limit := time.Duration(0)
	for _, name := range waitFor {
		w, err := time.ParseDuration(project.Services[name].Labels[compile.LabelReadyWithin])
		if err != nil {
			return max(DefaultWaitTimeout, atLeast)
		}
		limit = max(limit, w+readySlack)
	}
	return max(limit, atLeast)
}

// readyPoll is how often [Backend.waitReady] inspects the containers it
// waits for when the engine's event stream is unavailable, and, as a
// safety net, every readyRecheck while it is: readiness itself is seen
// from the stream's health_status events, at once.
const (
	readyPoll    = 100 * time.Millisecond
	readyRecheck = 2 * time.Second
)

// waitReady waits until the containers of the services waitFor of the
// running project name (of every service with all) are ready: healthy
// when they have a healthcheck (READY or their image's), else running.
// It fails as soon as one is unhealthy or exits, or after
// timeout, naming the service.
//
// It follows the engine's event stream (health_status and die events of
// the project's containers), so a service is seen ready as soon as the
// engine marks it healthy; compose's own wait polls every 500 ms, and
// before its first poll (LANGUAGE.md section 8, issue 14). Progress shows
// each container "Waiting" and then "Healthy", as compose's does.
func (b *Backend) waitReady(ctx context.Context, name string, waitFor []string, all bool, timeout time.Duration) error {
	if !all && len(waitFor) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Subscribed before the first look: a change after it is an event.
	evs := b.api.Events(ctx, client.EventsListOptions{Filters: projectFilter(name).
		Add("type", "container").Add("event", "health_status").Add("event", "die")})
	res, err := b.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(name)})
	if err != nil {
		return fmt.Errorf("cannot list containers: %s", oneLine(err))
	}
	pending := map[string]string{} // container ID -> its progress name
	service := map[string]string{} // container ID -> its service
	found := map[string]bool{}
	for _, c := range res.Items {
		s := serviceOf(c)
		if c.Labels[api.OneoffLabel] == "True" || (!all && !slices.Contains(waitFor, s)) {
			continue
		}
		found[s] = true
		service[c.ID] = s
		pending[c.ID] = progressName(c)
	}
	for _, s := range waitFor {
		if !found[s] {
			return fmt.Errorf("service %s has no container", s)
		}
	}
	evp := eventProcessor(b.progress)
	evp.Start(ctx, "wait")
	success := false
	defer func() { evp.Done("wait", success) }()
	for _, id := range slices.Sorted(maps.Keys(pending)) {
		evp.On(api.Resource{ID: pending[id], Status: api.Working, Text: api.StatusWaiting})
	}
	// check looks at container id once: done, failed or still waiting.
	check := func(id string) error {
		in, err := b.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("cannot inspect service %s: %s", service[id], oneLine(err))
		}
		c := in.Container
		st := c.State
		switch {
		case st == nil:
			return nil
		case st.Status == container.StateExited || st.Status == container.StateDead:
			evp.On(api.Resource{ID: pending[id], Status: api.Error, Text: api.StatusExited})
			return fmt.Errorf("service %s exited (%d) while it was waited for", service[id], st.ExitCode)
		case st.Health == nil || c.Config == nil || c.Config.Healthcheck == nil ||
			len(c.Config.Healthcheck.Test) == 0 || c.Config.Healthcheck.Test[0] == "NONE":
			if st.Status != container.StateRunning {
				return nil
			}
			evp.On(api.Resource{ID: pending[id], Status: api.Done, Text: api.StatusRunning})
		case st.Health.Status == container.Healthy:
			evp.On(api.Resource{ID: pending[id], Status: api.Done, Text: api.StatusHealthy})
		case st.Health.Status == container.Unhealthy:
			evp.On(api.Resource{ID: pending[id], Status: api.Error, Text: "Unhealthy"})
			return fmt.Errorf("service %s is unhealthy", service[id])
		default:
			return nil
		}
		delete(pending, id)
		return nil
	}
	checkAll := func() error {
		for _, id := range slices.Sorted(maps.Keys(pending)) {
			if err := check(id); err != nil {
				return err
			}
		}
		return nil
	}
	if err := checkAll(); err != nil {
		return err
	}
	tick := time.NewTicker(readyRecheck)
	defer tick.Stop()
	msgs, errs := evs.Messages, evs.Err
	for len(pending) > 0 {
		select {
		case m := <-msgs:
			switch _, ok := pending[m.Actor.ID]; {
			case !ok:
			case m.Action == events.ActionHealthStatusHealthy:
				// the event says it all: no inspect on the way out
				evp.On(api.Resource{ID: pending[m.Actor.ID], Status: api.Done, Text: api.StatusHealthy})
				delete(pending, m.Actor.ID)
			default:
				err = check(m.Actor.ID)
			}
		case <-errs:
			// The stream ended (a broken connection, or ctx is done):
			// poll instead, often, until ctx says.
			msgs, errs = nil, nil
			tick.Reset(readyPoll)
		case <-tick.C:
			err = checkAll()
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				var names []string
				for id := range pending {
					if !slices.Contains(names, service[id]) {
						names = append(names, service[id])
					}
				}
				slices.Sort(names)
				return fmt.Errorf("%s not ready after %s", strings.Join(names, ", "), timeout)
			}
			return ctx.Err()
		}
		if err != nil {
			return err
		}
	}
	success = true
	return nil
}

// progressName is how compose's progress names container c: "Container"
// and its canonical name (the one of its names without a link's slash).
func progressName(c container.Summary) string {
	for _, n := range c.Names {
		if n = strings.TrimPrefix(n, "/"); !strings.Contains(n, "/") {
			return "Container " + n
		}
	}
	return "Container " + c.ID[:min(12, len(c.ID))]
}

// notReadyReport describes the containers of project name that have a
// healthcheck and are not healthy: for each, its service, how long it has
// been waited for, its last healthcheck output and its last log lines.
// It returns "" when there is none, or when they cannot be inspected (the
// report only adds to an error already being returned).
func (b *Backend) notReadyReport(ctx context.Context, name string) string {
	res, err := b.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(name)})
	if err != nil {
		return ""
	}
	var parts []string
	for _, c := range res.Items {
		in, err := b.api.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil || in.Container.State == nil || in.Container.State.Health == nil {
			continue
		}
		st := in.Container.State
		h := st.Health
		if h.Status == container.Healthy {
			continue
		}
		service := serviceOf(c)
		msg := fmt.Sprintf("service %s %s", service, map[bool]string{true: "is unhealthy", false: "is not ready"}[h.Status == container.Unhealthy])
		if started, err := time.Parse(time.RFC3339Nano, st.StartedAt); err == nil && !started.IsZero() {
			msg += fmt.Sprintf(" after %s", time.Since(started).Round(100*time.Millisecond))
		}
		if w := in.Container.Config.Labels[compile.LabelReadyWithin]; w != "" {
			msg += " (READY WITHIN " + w + ")"
		}
		if n := len(h.Log); n > 0 {
			last := h.Log[n-1]
			out := strings.TrimSpace(last.Output)
			if out == "" {
				out = "(no output)"
			}
			msg += fmt.Sprintf("\n  last check (exit %d): %s", last.ExitCode, out)
		}
		if logs := b.lastLogs(ctx, c.ID, readyLogLines); logs != "" {
			msg += fmt.Sprintf("\n  last log lines of %s:\n%s", service, logs)
		} else {
			msg += fmt.Sprintf("\n  %s has logged nothing", service)
		}
		parts = append(parts, msg)
	}
	slices.Sort(parts)
	return strings.Join(parts, "\n")
}

// lastLogs returns the last n lines of container id's output, indented.
func (b *Backend) lastLogs(ctx context.Context, id string, n int) string {
	r, err := b.api.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(n)})
	if err != nil {
		return ""
	}
	defer r.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, r); err != nil && out.Len() == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}
