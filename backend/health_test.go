package backend

import (
	"testing"

	"github.com/moby/moby/api/types/container"
)

// TestSummarizeHealth counts waiting and unhealthy running containers from
// the status text engine 20.10 lists (and from Health when listed).
func TestSummarizeHealth(t *testing.T) {
	cs := []container.Summary{
		{State: container.StateRunning, Status: "Up 2 seconds (health: starting)"},
		{State: container.StateRunning, Status: "Up 3 seconds (health: starting)"},
		{State: container.StateRunning, Status: "Up 9 seconds (unhealthy)"},
		{State: container.StateRunning, Status: "Up 9 seconds (healthy)"},
		{State: container.StateRunning, Status: "Up 9 seconds"},
		{State: container.StateRunning, Status: "Up 1 second", Health: &container.HealthSummary{Status: container.Unhealthy}},
		{State: container.StateExited, Status: "Exited (1) 2 seconds ago"},
	}
	env := summarize("p", cs)
	if env.Waiting != 2 || env.Unhealthy != 2 {
		t.Fatalf("waiting %d, unhealthy %d; want 2, 2", env.Waiting, env.Unhealthy)
	}
	if env.Status != StatusPartial {
		t.Fatalf("status %s, want partial", env.Status)
	}
}
