// Package atomicfile replaces files so that readers see the old content or
// the new one, never a part: the store's index and objects, environment
// records and `denv compile -o` all write through it.
package atomicfile

import (
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
