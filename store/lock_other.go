//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package store

import (
	"fmt"
	"os"
	"runtime"
)

// flock is not available on this system; the store refuses to run rather
// than risk corrupting itself.
func flock(f *os.File, exclusive bool) error {
	return fmt.Errorf("the definition store needs flock, which %s does not provide", runtime.GOOS)
}
