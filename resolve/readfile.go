package resolve

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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

// LocalFile is the rule for a definition named by a local path, shared by
// Resolve and `denv add`: abs itself when it is a regular file, else
// abs+".denv" when the suffix was left out and that is a regular file. The
// error, when neither is, is abs's (or "not a regular file" when something
// that is not a file stands there).
func LocalFile(abs string) (string, error) {
	st, err := os.Stat(abs)
	if err == nil && st.Mode().IsRegular() {
		return abs, nil
	}
	if !strings.HasSuffix(abs, ".denv") {
		if st2, err2 := os.Stat(abs + ".denv"); err2 == nil {
			if st2.Mode().IsRegular() {
				return abs + ".denv", nil
			}
			err = nil // something stands there, not a file
		}
	}
	if err != nil {
		return "", err
	}
	return "", errors.New("not a regular file")
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
