//go:build unix

package atomicfile

import (
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives name the owner and group of the file st described, where
// permitted (root, or a group the user is in); otherwise the new file keeps
// the writer's, which is all an unprivileged user can do.
func keepOwner(name string, st fs.FileInfo) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		if os.Chown(name, int(s.Uid), int(s.Gid)) != nil {
			_ = os.Chown(name, -1, int(s.Gid))
		}
	}
}
