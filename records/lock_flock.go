//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package records

import (
	"errors"
	"os"
	"syscall"
)

// lock takes an exclusive advisory lock on f. With wait false it fails at
// once with errLocked when another open file holds it. Closing f (or the
// death of the process) releases it.
func lock(f *os.File, wait bool) error {
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err := syscall.Flock(int(f.Fd()), how)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return errLocked
		}
		return err
	}
}

// unlock releases the lock on f taken by lock, keeping f open.
func unlock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
