package backend

import (
	"context"
	"io"

	"github.com/compose-spec/compose-go/v2/types"
)

// Engine runs environments on one runtime (the local Docker Compose
// runtime, a swarm's stacks; later Kubernetes), in the spirit of
// docker/compose's pkg/api.Compose. cmd/denv asks a run record which
// engine it was deployed on and acts on it only through this interface:
// a new runtime is one new implementation, not edits across verbs.
//
// Environments are named by their id (the compose project or stack name).
// An engine does not own the records: it is given what a record keeps as a
// [Deployment] and never writes one.
type Engine interface {
	// Render turns a compiled project into the document the engine
	// deploys (a compose file, a stack file): what the record keeps, so
	// that start can recreate the environment as it was first run.
	Render(p *types.Project, opts RenderOptions) ([]byte, error)
	// Deploy creates and starts d. With wait it returns once its
	// containers run (healthy when they have a healthcheck); else once
	// they are started. When it fails, what it created is removed.
	Deploy(ctx context.Context, d Deployment, wait bool) error
	// Start starts the stopped environment d again, with its data; when
	// its resources are gone it deploys d again.
	Start(ctx context.Context, d Deployment) error
	// Stop stops environment id, keeping its resources and data.
	Stop(ctx context.Context, id string) error
	// Remove removes environment id; a running one only with force.
	// Named volumes are removed only with volumes.
	Remove(ctx context.Context, id string, force, volumes bool) error
	// Logs writes the logs of environment id (of the services named, or
	// of all), each line prefixed with its container; follow keeps
	// following until ctx ends.
	Logs(ctx context.Context, id string, services []string, follow bool, w io.Writer) error
	// Status returns the state of each of the environments ids found on
	// the engine; the ones absent are not in the map.
	Status(ctx context.Context, ids []string) (map[string]EnvState, error)
	// Endpoints returns the published ports of environment id.
	Endpoints(ctx context.Context, id string) ([]Port, error)
	// Volumes returns the engine's names of the named volumes of d.
	Volumes(ctx context.Context, d Deployment) ([]string, error)
}

// Deployment is what a run record keeps of an environment, as an engine
// needs it: its id, the rendered project and the directory relative
// paths in it are resolved against.
type Deployment struct {
	ID      string
	Project []byte
	WorkDir string
	// KeepOnFailure asks Deploy to leave what it created in place when
	// it fails (`denv run --keep-on-failure`); not part of the record.
	KeepOnFailure bool
	// Loaded is optional: Project as compose-go's loader loaded it
	// ([EncodeLoaded], kept beside the record), which an engine may use
	// to plan without loading Project again ([LoadDeployment]).
	Loaded []byte
}

// RenderOptions are the choices made when an environment is first run.
type RenderOptions struct {
	// WorkDir resolves the project's relative paths.
	WorkDir string
	// PublishMode is how a swarm publishes ports: "ingress" (the routing
	// mesh) or "host". Engines without the choice ignore it.
	PublishMode string
}
