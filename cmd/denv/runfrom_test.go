package main

import (
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/alebellu/denv/clone"
)

// volumeMismatch: equal keys pass, and a difference names each side, in
// the words restore and run --from both use.
func TestVolumeMismatch(t *testing.T) {
	s := &snapshotInfo{Name: "s", volumes: map[string]string{"data": "x", "logs": "y"}}
	pairs := func(keys ...string) []clone.VolumePair {
		var ps []clone.VolumePair
		for _, k := range keys {
			ps = append(ps, clone.VolumePair{Key: k})
		}
		return ps
	}
	for _, c := range []struct {
		keys []string
		want string
	}{
		{[]string{"data", "logs"}, ""},
		{[]string{"data"}, "the snapshot has volumes logs that kv.denv lacks"},
		{[]string{"cache", "data", "logs", "tmp"}, "kv.denv has volumes cache, tmp that the snapshot lacks"},
		{[]string{"store"}, "kv.denv has volumes store that the snapshot lacks; the snapshot has volumes data, logs that kv.denv lacks"},
		{nil, "the snapshot has volumes data, logs that kv.denv lacks"},
	} {
		if got := volumeMismatch("kv.denv", pairs(c.keys...), s); got != c.want {
			t.Errorf("volumeMismatch(%v) = %q, want %q", c.keys, got, c.want)
		}
	}
}

// seedPairs copies each snapshot volume into the project's volume of the
// same key; external volumes are not the environment's to fill.
func TestSeedPairs(t *testing.T) {
	p := &types.Project{Name: "new", Volumes: types.Volumes{
		"logs": {Name: "new_logs"},
		"data": {Name: "new_data"},
		"ext":  {Name: "shared", External: true},
	}}
	s := &snapshotInfo{Name: "s", volumes: map[string]string{"data": "denv-snap-s.data", "logs": "denv-snap-s.logs"}}
	if why := volumeMismatch("new", clone.Pairs(p, ""), s); why != "" {
		t.Fatalf("matching keys refused: %s", why)
	}
	want := []clone.VolumePair{
		{Key: "data", Src: "denv-snap-s.data", Dst: "new_data"},
		{Key: "logs", Src: "denv-snap-s.logs", Dst: "new_logs"},
	}
	if diff := cmp.Diff(want, seedPairs(p, s)); diff != "" {
		t.Errorf("pairs (-want +got):\n%s", diff)
	}
}

// checkFrom: no --from, or a valid name on the local engine, passes; a bad
// name or another engine is refused before anything is asked.
func TestCheckFrom(t *testing.T) {
	for _, c := range []struct{ from, engine, want string }{
		{"", "swarm", ""},
		{"s-1", "local", ""},
		{"S 1", "local", `invalid snapshot name "S 1": use lower-case letters, digits, '-' and '_', starting with a letter or digit, at most 63 characters`},
		{"s-1", "swarm", "run: --from is for --engine local: a snapshot holds volumes of this daemon, a swarm environment's are on its nodes"},
	} {
		got := ""
		if err := checkFrom(c.from, c.engine); err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("checkFrom(%q, %q) = %q, want %q", c.from, c.engine, got, c.want)
		}
	}
}
