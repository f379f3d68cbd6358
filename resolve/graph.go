package resolve

import (
	"time"

	"github.com/alebellu/denv/diag"
)

// Graph is a resolved environment graph: every environment instance reached
// from the root, each once.
type Graph struct {
	Root *Env
	// Envs holds every instance, the root first, then in the order they were
	// first reached (depth first, in statement order). Deterministic.
	Envs []*Env
	// HostBinds is set when the root is a stored definition added with
	// --allow-host-binds, whose remote files may therefore bind host paths.
	HostBinds bool
}

// Env is one environment instance.
type Env struct {
	// Name is the instance name: its AS name, else the last path element of
	// its reference. Unique in the graph.
	Name string
	// Def is the definition's name: its path without .denv relative to its
	// source root, a store name, or a github: reference.
	Def string
	// File is the definition file as shown to the user.
	File string
	// Remote is true for a definition fetched from a remote source.
	Remote bool
	// Pos is where this instance was first included (zero for the root).
	Pos diag.Pos
	// Params are the definition's parameters with the values this instance
	// was resolved with, in declaration order. An instance is its name and
	// these values.
	Params []Param

	Includes []*Include
	Services []*Service
	// Exposed is the environment's interface: its exposed services, re-exports
	// of included environments flattened, in statement order.
	Exposed []Exposed
	// IncludedBy lists the environments that include this one, in graph order.
	IncludedBy []*Env
}

// Include is an ENV statement.
type Include struct {
	Env *Env
	Pos diag.Pos
	// Ref is the reference as written in the ENV statement.
	Ref string
}

// Exposed is one service in an environment's interface.
type Exposed struct {
	// Name is the service's name in the interface: the service name for a
	// service of the environment, the included environment's name for one
	// it re-exports.
	Name    string
	Service *Service
}

// Service is one IMAGE of an environment.
type Service struct {
	Env   *Env
	Name  string
	Image string
	Pos   diag.Pos

	Links   []Target
	Ports   []Port
	Volumes []Volume
	Environ []EnvVar
	// Command is the CMD, split into words; nil when there is none.
	Command []string
	// Ready is the READY clause; nil when there is none.
	Ready *Ready
}

// Ready is a READY clause: the service is ready once Command, run inside
// its container, exits 0; it must be ready within Within of its start.
type Ready struct {
	Command []string
	Within  time.Duration
	Pos     diag.Pos
}

// The limits of READY ... WITHIN.
const (
	// DefaultReadyWithin is the limit when WITHIN is left out.
	DefaultReadyWithin = 60 * time.Second
	// MaxReadyWithin is the longest limit accepted: a start that waits a
	// day for one service is a mistake, and every target can hold it.
	MaxReadyWithin = 24 * time.Hour
)

// Target is what a LINK or EXPOSE names: a sibling service or an included
// environment.
type Target struct {
	Service *Service
	Env     *Env
	Pos     diag.Pos
}

// Port is a PORT clause.
type Port struct {
	Host      uint16 // 0 for an ephemeral host port
	Container uint16
	Protocol  string // "tcp" or "udp"
	Pos       diag.Pos
}

// VolumeKind tells a named volume from a bind mount.
type VolumeKind int

// The volume kinds.
const (
	NamedVolume VolumeKind = iota
	BindMount
)

// Volume is a VOLUME clause.
type Volume struct {
	Kind VolumeKind
	// Name is the volume's name within its environment for a named volume;
	// for "VOLUME /path" it is derived from the service and the path.
	Name string
	// Source is the host directory of a bind mount, absolute.
	Source   string
	Target   string
	ReadOnly bool
	Pos      diag.Pos
}

// EnvVar is a SET clause.
type EnvVar struct {
	Key, Value string
	Pos        diag.Pos
}
