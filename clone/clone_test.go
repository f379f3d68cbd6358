package clone_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/alebellu/denv/clone"
)

const recorded = `name: src
services:
  web:
    image: ex/web
    ports:
      - target: 8080
        published: "9000"
        protocol: tcp
      - target: 9090
  db:
    image: ex/db
    ports:
      - target: 5432
        published: "5432"
        protocol: udp
volumes:
  data: {}
`

func TestRewrite(t *testing.T) {
	out, moved, err := clone.Rewrite([]byte(recorded), "dst")
	if err != nil {
		t.Fatal(err)
	}
	want := `name: dst
services:
    web:
        image: ex/web
        ports:
            - target: 8080
              protocol: tcp
            - target: 9090
    db:
        image: ex/db
        ports:
            - target: 5432
              protocol: udp
volumes:
    data: {}
`
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("rewritten project (-want +got):\n%s", diff)
	}
	wantMoved := []clone.MovedPort{
		{Service: "web", Published: "9000", Protocol: "tcp", Target: 8080},
		{Service: "db", Published: "5432", Protocol: "udp", Target: 5432},
	}
	if diff := cmp.Diff(wantMoved, moved); diff != "" {
		t.Errorf("moved ports (-want +got):\n%s", diff)
	}
}

func TestRewriteRefuses(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"services:\n  web:\n    ports: [\"9000:80\"]\n", `service web: short port syntax "9000:80" is not supported by clone`},
		{"- a\n", "invalid recorded project: not a mapping"},
		{"a: [", "invalid recorded project: "},
	} {
		_, _, err := clone.Rewrite([]byte(c.doc), "dst")
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Rewrite(%q) error = %v, want prefix %q", c.doc, err, c.want)
		}
	}
}

func project() *types.Project {
	return &types.Project{
		Name: "dst",
		Services: types.Services{
			"web": {Name: "web"},
		},
		Volumes: types.Volumes{
			"data": {Name: "dst_data"},
			"logs": {Name: "dst_logs"},
			"ext":  {Name: "shared", External: true},
		},
		Networks: types.Networks{"default": {Name: "dst_default"}},
	}
}

func TestCheckIndependent(t *testing.T) {
	p := project()
	delete(p.Volumes, "ext")
	if err := clone.CheckIndependent(p); err != nil {
		t.Fatalf("independent project refused: %v", err)
	}
	for _, c := range []struct {
		edit func(*types.Project)
		want string
	}{
		{func(p *types.Project) { p.Volumes["data"] = types.VolumeConfig{Name: "fixed"} }, "volume data has a fixed name (fixed): a clone would share it"},
		{func(p *types.Project) {
			p.Networks["default"] = types.NetworkConfig{Name: "dst_default", External: true}
		}, "network default has a fixed name (dst_default): a clone would share it"},
		{func(p *types.Project) { p.Services["web"] = types.ServiceConfig{Name: "web", ContainerName: "web"} }, "service web has a fixed container name: a clone cannot have its own"},
	} {
		p := project()
		delete(p.Volumes, "ext")
		c.edit(p)
		if err := clone.CheckIndependent(p); err == nil || err.Error() != c.want {
			t.Errorf("CheckIndependent error = %v, want %q", err, c.want)
		}
	}
}

func TestPairs(t *testing.T) {
	got := clone.Pairs(project(), "src")
	want := []clone.VolumePair{
		{Key: "data", Src: "src_data", Dst: "dst_data"},
		{Key: "logs", Src: "src_logs", Dst: "dst_logs"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pairs (-want +got):\n%s", diff)
	}
}

var errNotFound = errors.New("not found")

// remover records what the rollback removes; downErr is Down's result.
type remover struct {
	calls   []string
	downErr error
	volErr  error
}

func (r *remover) Down(_ context.Context, id string, volumes bool) error {
	r.calls = append(r.calls, "down "+id)
	return r.downErr
}

func (r *remover) RemoveVolumes(_ context.Context, names []string) error {
	r.calls = append(r.calls, "rm "+strings.Join(names, ","))
	return r.volErr
}

func TestRollback(t *testing.T) {
	cause := errors.New("copy failed:\n  disk full")
	for _, c := range []struct {
		name      string
		rb        clone.Rollback
		rm        remover
		wantCalls []string
		want      string
	}{
		{"before start", clone.Rollback{SrcID: "a", ID: "b", Volumes: []string{"b_data"}}, remover{},
			[]string{"rm b_data", "abort"}, "cannot clone a to b: copy failed: disk full; nothing of b was kept"},
		{"started, project gone", clone.Rollback{SrcID: "a", ID: "b", Started: true}, remover{downErr: errNotFound},
			[]string{"down b", "rm ", "abort"}, "cannot clone a to b: copy failed: disk full; nothing of b was kept"},
		{"removal fails", clone.Rollback{SrcID: "a", ID: "b", Started: true, Volumes: []string{"b_data"}}, remover{volErr: errors.New("volume in use")},
			[]string{"down b", "rm b_data", "abort"}, "cannot clone a to b: copy failed: disk full; removing b failed: volume in use"},
		{"another operation", clone.Rollback{ID: "b", Started: true, Volumes: []string{"b_data"}, What: "run b from snapshot s"}, remover{},
			[]string{"down b", "rm b_data", "abort"}, "cannot run b from snapshot s: copy failed: disk full; nothing of b was kept"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rm := c.rm
			abort := func() error { rm.calls = append(rm.calls, "abort"); return nil }
			err := c.rb.Run(context.Background(), &rm, errNotFound, abort, cause)
			if err == nil || err.Error() != c.want {
				t.Errorf("error = %v, want %q", err, c.want)
			}
			if diff := cmp.Diff(c.wantCalls, rm.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}
