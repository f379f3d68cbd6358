//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package records

import (
	"fmt"
	"os"
	"runtime"
)

// lock is not available on this system: without it a run's claim could
// not tell a living claimant from a dead one.
func lock(f *os.File, wait bool) error {
	return fmt.Errorf("environment records need flock, which %s does not provide", runtime.GOOS)
}

func unlock(f *os.File) error { return nil }
