package main

import (
	"strings"
	"testing"

	"github.com/alebellu/denv/backend/volumecopy"
	"github.com/alebellu/denv/clone"
)

// snapshotsFrom: a snapshot with a head is complete and takes its
// metadata from it; data volumes without a head are listed incomplete.
func TestSnapshotsFrom(t *testing.T) {
	vs := []volumecopy.LabeledVolume{
		{Name: "denv-snap-a.data", Labels: map[string]string{volumecopy.SnapshotLabel: "a", volumecopy.SnapshotVolumeLabel: "data"}},
		{Name: "denv-snap-a.logs", Labels: map[string]string{volumecopy.SnapshotLabel: "a", volumecopy.SnapshotVolumeLabel: "logs"}},
		{Name: "denv-snap-a", Labels: map[string]string{volumecopy.SnapshotLabel: "a", volumecopy.SnapshotCompleteLabel: "true",
			volumecopy.SnapshotEnvLabel: "env1", volumecopy.SnapshotDefinitionLabel: "kv",
			volumecopy.SnapshotCreatedLabel: "2026-12-03T07:51:09Z", volumecopy.SnapshotBytesLabel: `{"data":10,"logs":5}`}},
		{Name: "denv-snap-b.data", Labels: map[string]string{volumecopy.SnapshotLabel: "b", volumecopy.SnapshotVolumeLabel: "data"}},
	}
	ss := snapshotsFrom(vs)
	if len(ss) != 2 || ss[0].Name != "a" || ss[1].Name != "b" {
		t.Fatalf("got %+v, want snapshots a and b", ss)
	}
	a := ss[0]
	if a.Incomplete || a.Environment != "env1" || a.Definition != "kv" || a.Bytes != 15 || a.Created.Year() != 2026 ||
		a.volumes["data"] != "denv-snap-a.data" || a.volumes["logs"] != "denv-snap-a.logs" || len(a.all) != 3 {
		t.Errorf("a = %+v", a)
	}
	if !ss[1].Incomplete || ss[1].volumes["data"] != "denv-snap-b.data" {
		t.Errorf("b = %+v, want incomplete with its data volume", ss[1])
	}
}

func TestMatchKeys(t *testing.T) {
	s := &snapshotInfo{Name: "s", volumes: map[string]string{"data": "x", "logs": "y"}}
	if err := matchKeys("e", []clone.VolumePair{{Key: "data"}, {Key: "logs"}}, s); err != nil {
		t.Errorf("same keys refused: %v", err)
	}
	err := matchKeys("e", []clone.VolumePair{{Key: "data"}, {Key: "cache"}}, s)
	if err == nil || !strings.Contains(err.Error(), "e has volumes cache that the snapshot lacks") ||
		!strings.Contains(err.Error(), "the snapshot has volumes logs that e lacks") {
		t.Errorf("mismatch error %v, want both sides named", err)
	}
}
