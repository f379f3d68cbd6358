// Package backend is the only part of denv that talks to Docker.
//
// It turns a compiled compose-spec YAML document into a compose-go
// [types.Project] (see [Load]) and runs it as a named Docker Compose project
// through the Docker Compose Go SDK (github.com/docker/compose/v5), so that
// the environments denv creates are ordinary Compose projects: `docker
// compose ls` lists them and `docker compose -p NAME ps|logs|down` work on
// them.
//
// A [Backend] is created with [New] from the user's normal Docker
// configuration (DOCKER_HOST, DOCKER_CONTEXT, the current context of
// ~/.docker/config.json, DOCKER_TLS_VERIFY, ...), exactly like the docker CLI.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/context/docker"
	"github.com/docker/cli/cli/flags"
	"github.com/docker/cli/cli/streams"
	"github.com/docker/compose/v5/cmd/display"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/docker/compose/v5/pkg/compose"
	"github.com/moby/moby/client"
	"github.com/spf13/pflag"
)

// DefaultPingTimeout bounds the reachability check done by [New].
const DefaultPingTimeout = 5 * time.Second

// ErrDaemonUnreachable is matched (with errors.Is) by the error [New] returns
// when the Docker daemon cannot be reached. Use errors.As with
// *[DaemonUnreachableError] to get the host that was tried.
const ErrDaemonUnreachable = sentinelError("docker daemon unreachable")

// sentinelError is an immutable (constant) error value.
type sentinelError string

// Error implements error.
func (e sentinelError) Error() string { return string(e) }

// DaemonUnreachableError reports that no Docker daemon answered at Host.
// Its message is a single line meant to be shown to the user as is.
type DaemonUnreachableError struct {
	// Host is the daemon address that was tried, e.g. unix:///var/run/docker.sock.
	Host string
	// Context is the docker context the address came from ("default" when it
	// came from DOCKER_HOST or the built-in default).
	Context string
	// Err is the underlying error.
	Err error
}

// Error implements error.
func (e *DaemonUnreachableError) Error() string {
	where := e.Host
	if e.Context != "" && e.Context != command.DefaultContextName {
		where = fmt.Sprintf("%s (docker context %q)", e.Host, e.Context)
	}
	switch {
	case e.Err == nil || client.IsErrConnectionFailed(e.Err):
		return fmt.Sprintf("cannot reach the Docker daemon at %s: is it running?", where)
	case strings.Contains(e.Err.Error(), "permission denied"):
		return fmt.Sprintf("cannot reach the Docker daemon at %s: permission denied (is your user allowed to use Docker?)", where)
	case errors.Is(e.Err, context.DeadlineExceeded):
		return fmt.Sprintf("cannot reach the Docker daemon at %s: no answer in time, is it running?", where)
	default:
		return fmt.Sprintf("cannot reach the Docker daemon at %s: %s", where, oneLine(e.Err))
	}
}

// Unwrap returns the underlying error.
func (e *DaemonUnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrDaemonUnreachable) true.
func (e *DaemonUnreachableError) Is(target error) bool { return target == ErrDaemonUnreachable }

// Option configures [New].
type Option func(*config)

type config struct {
	progress    io.Writer
	pingTimeout time.Duration
}

// WithProgress sets where compose progress is displayed. The rich terminal
// display is used when w is a terminal, plain lines otherwise; nil disables
// progress output. The default is os.Stderr.
func WithProgress(w io.Writer) Option {
	return func(c *config) { c.progress = w }
}

// WithPingTimeout bounds the daemon reachability check done by [New]
// (default [DefaultPingTimeout]).
func WithPingTimeout(d time.Duration) Option {
	return func(c *config) { c.pingTimeout = d }
}

// Backend runs denv environments as Docker Compose projects. It holds the
// docker CLI and its API client (compose services are made from them per
// operation); create it with [New] and release it with [Backend.Close].
// Methods may be called concurrently, although progress output of
// concurrent operations then interleaves.
type Backend struct {
	dockerCli *command.DockerCli
	api       client.APIClient
	host      string
	context   string
	progress  io.Writer
}

// New builds a Backend from the user's normal Docker configuration (the same
// resolution as the docker CLI: DOCKER_HOST, DOCKER_CONTEXT, the current
// context, DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, DOCKER_CONFIG) and checks that
// the daemon answers a ping. When it does not, the error is a
// *[DaemonUnreachableError] matching [ErrDaemonUnreachable].
func New(ctx context.Context, opts ...Option) (*Backend, error) {
	cfg := config{progress: os.Stderr, pingTimeout: DefaultPingTimeout}
	for _, o := range opts {
		o(&cfg)
	}

	dockerCli, err := command.NewDockerCli()
	if err != nil {
		return nil, fmt.Errorf("cannot create the docker CLI: %w", err)
	}
	clientOpts, err := clientOptionsFromEnv()
	if err != nil {
		return nil, err
	}
	if err := dockerCli.Initialize(clientOpts); err != nil {
		return nil, fmt.Errorf("cannot initialise the docker CLI: %w", err)
	}

	// Resolve the endpoint and build the API client ourselves: the docker
	// CLI does it lazily in DockerCli.Client(), which calls os.Exit(1) when
	// that fails. Installing the client beforehand keeps every failure an
	// ordinary error.
	contextName := dockerCli.CurrentContext()
	endpoint, err := resolveEndpoint(dockerCli, contextName)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("docker context %q does not exist (set by DOCKER_CONTEXT or `docker context use`)", contextName)
		}
		if host := os.Getenv(client.EnvOverrideHost); host != "" && contextName == command.DefaultContextName {
			return nil, fmt.Errorf("invalid DOCKER_HOST %q: %s", host, oneLine(err))
		}
		return nil, fmt.Errorf("cannot use docker context %q: %s", contextName, oneLine(err))
	}
	apiOpts, err := endpoint.ClientOpts()
	if err != nil {
		return nil, fmt.Errorf("cannot configure the Docker client for %s: %w", endpoint.Host, err)
	}
	if headers := dockerCli.ConfigFile().HTTPHeaders; len(headers) > 0 {
		apiOpts = append(apiOpts, client.WithHTTPHeaders(headers))
	}
	apiOpts = append(apiOpts, client.WithUserAgent("denv "+command.UserAgent()))
	apiClient, err := client.New(apiOpts...)
	if err != nil {
		return nil, fmt.Errorf("cannot create the Docker client for %s: %w", endpoint.Host, err)
	}
	if err := command.WithAPIClient(apiClient)(dockerCli); err != nil {
		_ = apiClient.Close()
		return nil, fmt.Errorf("cannot install the Docker client: %w", err)
	}

	host := endpoint.Host
	if host == "" {
		host = apiClient.DaemonHost()
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.pingTimeout)
	defer cancel()
	if _, err := apiClient.Ping(pingCtx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		_ = apiClient.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &DaemonUnreachableError{Host: host, Context: contextName, Err: err}
	}

	return &Backend{
		dockerCli: dockerCli,
		api:       apiClient,
		host:      host,
		context:   contextName,
		progress:  cfg.progress,
	}, nil
}

// newCompose returns a compose service reporting progress to the Backend's
// progress writer and to rec, when not nil. A service is made per operation
// (it is a cheap struct over the shared docker CLI) so that each operation
// can record its own events.
func (b *Backend) newCompose(rec *eventRecorder) (api.Compose, error) {
	progress := b.progress
	if progress == nil {
		progress = io.Discard
	}
	var events api.EventProcessor = eventProcessor(b.progress)
	if rec != nil {
		rec.next = events
		events = rec
	}
	svc, err := compose.NewComposeService(b.dockerCli,
		compose.WithEventProcessor(events),
		compose.WithErrorStream(progress),
		compose.WithOutputStream(progress),
		compose.WithInputStream(strings.NewReader("")),
		// Never say yes on the user's behalf (compose only prompts before
		// destructive actions that denv does not use).
		compose.WithPrompt(func(_ string, def bool) (bool, error) { return def, nil }),
	)
	if err != nil {
		return nil, fmt.Errorf("cannot create the compose service: %w", err)
	}
	return svc, nil
}

// eventRecorder forwards compose progress events to next and remembers
// which resources failed, to name them in errors. Compose reports some
// failures (a missing image) with an error event, others (a container that
// cannot start) only by never finishing the resource's task, so both are
// kept.
type eventRecorder struct {
	next   api.EventProcessor
	mu     sync.Mutex
	failed []string
	last   map[string]api.EventStatus
	order  []string
}

// Start implements api.EventProcessor.
func (r *eventRecorder) Start(ctx context.Context, operation string) { r.next.Start(ctx, operation) }

// Done implements api.EventProcessor.
func (r *eventRecorder) Done(operation string, success bool) { r.next.Done(operation, success) }

// On implements api.EventProcessor.
func (r *eventRecorder) On(events ...api.Resource) {
	r.mu.Lock()
	if r.last == nil {
		r.last = map[string]api.EventStatus{}
	}
	for _, e := range events {
		if _, seen := r.last[e.ID]; !seen {
			r.order = append(r.order, e.ID)
		}
		r.last[e.ID] = e.Status
		if e.Status == api.Error {
			r.failed = append(r.failed, e.ID)
		}
	}
	r.mu.Unlock()
	r.next.On(events...)
}

// culprits returns the IDs of the resources that failed, or else of those
// whose task never finished.
func (r *eventRecorder) culprits() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failed) > 0 {
		return dedup(r.failed)
	}
	var unfinished []string
	for _, id := range r.order {
		if r.last[id] == api.Working {
			unfinished = append(unfinished, id)
		}
	}
	return unfinished
}

func dedup(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Host returns the address of the Docker daemon the Backend talks to.
func (b *Backend) Host() string { return b.host }

// Context returns the name of the docker context the Backend was built from.
func (b *Backend) Context() string { return b.context }

// API returns the Docker API client, for the runtimes in backend's
// subpackages (the swarm stacks, volume copying).
func (b *Backend) API() client.APIClient { return b.api }

// Close releases the connections held by the Backend.
func (b *Backend) Close() error {
	return b.api.Close()
}

// clientOptionsFromEnv returns the docker CLI's global options as the docker
// CLI itself computes them when no flag is given: the defaults of its flags
// come from the environment (DOCKER_TLS, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH,
// DOCKER_CONFIG); DOCKER_HOST and DOCKER_CONTEXT are read during Initialize.
func clientOptionsFromEnv() (*flags.ClientOptions, error) {
	opts := flags.NewClientOptions()
	fs := pflag.NewFlagSet("docker", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opts.InstallFlags(fs)
	if err := fs.Parse(nil); err != nil {
		return nil, fmt.Errorf("cannot read the docker client options: %w", err)
	}
	opts.SetDefaultOptions(fs)
	// Keep logrus at warning level: the docker CLI would otherwise set it to
	// info, and compose logs chatty info lines through it.
	opts.LogLevel = "warn"
	return opts, nil
}

// resolveEndpoint mirrors the docker CLI's own endpoint resolution (the
// "default" context is computed from DOCKER_HOST and the TLS options).
func resolveEndpoint(dockerCli *command.DockerCli, contextName string) (docker.Endpoint, error) {
	store := dockerCli.ContextStore()
	meta, err := store.GetMetadata(contextName)
	if err != nil {
		return docker.Endpoint{}, err
	}
	epMeta, err := docker.EndpointFromContext(meta)
	if err != nil {
		return docker.Endpoint{}, err
	}
	return docker.WithTLSData(store, contextName, epMeta)
}

// eventProcessor picks compose's progress renderer for w, like `docker
// compose --progress auto` does for stderr.
func eventProcessor(w io.Writer) api.EventProcessor {
	if w == nil {
		return display.Quiet()
	}
	if streams.NewOut(w).IsTerminal() {
		return display.Full(w, w, true)
	}
	return display.Plain(w)
}

// isNotFound reports whether err is a "no such object" error from the engine.
func isNotFound(err error) bool {
	return errdefs.IsNotFound(err)
}
