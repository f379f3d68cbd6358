// Package atomicfile replaces files so that readers see the old content or
// the new one, never a part: the store's index and objects, environment
// records and `denv compile -o` all write through it.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces name with data: a temporary file in the same directory
// (named tmpPrefix followed by random characters), mode perm, fsync, then
// rename over name. The directory itself is not synced. On error name is
// unchanged and no temporary file is left.
func Write(name string, data []byte, perm fs.FileMode, tmpPrefix string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), tmpPrefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

// WriteOver writes data to name the way a user writing over a file expects
// (denv compile -o). A regular file (or a symlink to one, which stays a
// symlink) is replaced atomically as by Write, keeping its permission bits
// and, where the process may, its owner and group: a 0600 file holding
// secrets stays 0600. Anything else that exists (a device such as /dev/null,
// a FIFO) is opened and written in place like a shell redirection, never
// replaced by a regular file. A directory is refused. A new file is created
// with mode newPerm.
func WriteOver(name string, data []byte, newPerm fs.FileMode, tmpPrefix string) error {
	target := name
	if resolved, err := filepath.EvalSymlinks(name); err == nil {
		target = resolved
	}
	st, err := os.Stat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Write(target, data, newPerm, tmpPrefix)
	case err != nil:
		return err
	case st.IsDir():
		return fmt.Errorf("%s is a directory", name)
	case !st.Mode().IsRegular():
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := Write(target, data, st.Mode().Perm(), tmpPrefix); err != nil {
		return err
	}
	keepOwner(target, st)
	return nil
}
