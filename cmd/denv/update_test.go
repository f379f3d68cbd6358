package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alebellu/denv/plan"
	"github.com/alebellu/denv/records"
)

func TestUpdateSetsKeepsRecordedButSecrets(t *testing.T) {
	got := updateSets(map[string]string{"b": "2", "a": "1", "pw": "***"}, []string{"b=3"})
	want := []string{"a=1", "b=2", "b=3"}
	if !slices.Equal(got, want) {
		t.Fatalf("updateSets = %q, want %q (recorded sorted, secrets left out, --set last so it wins)", got, want)
	}
}

func TestVolumesLostByAnUpdate(t *testing.T) {
	p := &plan.Plan{
		Services: []plan.Service{
			{Name: "db", Action: plan.Remove, Volumes: []string{"data", "logs"}},
			{Name: "web", Action: plan.Recreate},
		},
		Volumes: []plan.Resource{{Name: "cache", Action: plan.Recreate}, {Name: "logs", Action: plan.Remove}},
	}
	drop := removedVolumes(p)
	if !slices.Equal(drop, []string{"data", "logs"}) {
		t.Errorf("removedVolumes = %q", drop)
	}
	if lost := lostVolumes(p, drop); !slices.Equal(lost, []string{"cache", "data", "logs"}) {
		t.Errorf("lostVolumes = %q", lost)
	}
	if lost := lostVolumes(p, nil); !slices.Equal(lost, []string{"cache"}) {
		t.Errorf("lostVolumes without --volumes = %q", lost)
	}
}

func TestRecordedDef(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "app.denv")
	if err := os.WriteFile(file, []byte("IMAGE ex/web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := recordedDef(records.Record{Source: "/x/y.denv", Definition: "app", WorkDir: dir}); got != "/x/y.denv" {
		t.Errorf("with Source: %q", got)
	}
	if got := recordedDef(records.Record{Definition: "app", WorkDir: dir}); got != file {
		t.Errorf("older record, file in its work dir: %q, want %q", got, file)
	}
	if got := recordedDef(records.Record{Definition: "stored", WorkDir: dir}); got != "stored" {
		t.Errorf("a stored name: %q", got)
	}
	t.Chdir(dir)
	if got := sourceArg("app"); got != file {
		t.Errorf("sourceArg(app) = %q, want %q", got, file)
	}
	if got := sourceArg("github:o/r/x.denv"); got != "github:o/r/x.denv" {
		t.Errorf("sourceArg(github:) = %q", got)
	}
}
