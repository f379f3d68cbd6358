package resolve

import (
	"fmt"
	"io"
	"os"

	"github.com/alebellu/denv/grammar"
)

// Bounds of a remote graph: fetches are each bounded in time and size, but
// a repository can generate an endless chain (gen/1 includes gen/2 ...) or
// an endless fan-out; these stop it with one error. A local graph is the
// user's own and is not bounded.
const (
	// MaxRemoteFiles is the most remote definition files one resolve loads.
	MaxRemoteFiles = 1000
	// MaxRemoteDepth is the deepest include of a remote definition: the
	// number of includes from the root down to it.
	MaxRemoteDepth = 64
)

// readDefFile is the default Options.ReadFile: it reads a local definition
// file, refusing anything but a regular file (a symlink to /dev/zero would
// read without end, a FIFO would block for ever) and reading at most one
// byte past grammar.MaxFileSize, so that a 600 MB file is not read whole
// before the size check.
func readDefFile(name string) ([]byte, error) {
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", name, fileKind(st.Mode()))
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// it could have been swapped between Stat and Open
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, grammar.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > grammar.MaxFileSize {
		return nil, fmt.Errorf("%s is larger than the %d byte limit", name, grammar.MaxFileSize)
	}
	return data, nil
}

// fileKind names the type of a file that is not regular.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a file"
}
