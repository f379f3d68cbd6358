package copier

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// AsidePrefix starts the name of the directory that [ReplaceCommand]
// moves a destination's entries into while it copies.
const AsidePrefix = ".denv-restore-"

// ReplaceCommand replaces the contents of directories, all or none, as
// the engine runs it for a restore:
//
//	[--wait] SRC DST [SRC DST]...
//
// It first moves every entry of each DST into a new directory
// DST/.denv-restore-RANDOM (renames: nothing is copied), then copies each
// SRC into its DST like [Command], writing [Event] lines to out, and only
// once every copy is complete removes the entries moved aside and writes
// "finished". If anything fails before that, or with [WaitFlag] its input
// ends (the caller went away or was interrupted: closing the input is how
// to stop it), it removes what it copied, moves every entry back, gives
// each DST its own mode, owner and times again, writes "undone" and fails:
// every DST is as it was. Should that fail too, the error names the
// directory that holds a destination's former entries.
//
// The cost is one copy: the former contents are moved, not copied, and
// removed at the end.
func ReplaceCommand(args []string, in io.Reader, out io.Writer) error {
	beside := false
	if i := slices.Index(args, BesideFlag); i >= 0 && i < 2 {
		beside = true
		args = slices.Delete(slices.Clone(args), i, i+1)
	}
	args, rest, err := parsePairs(args, in)
	if err != nil {
		return err
	}
	abort := make(chan struct{})
	if rest != nil {
		go func() {
			// anything after the go-ahead, up to the end of input,
			// stops the replacement
			_, _ = rest.ReadByte()
			close(abort)
		}()
	}
	return replaceTrees(args, abort, out, beside)
}

// BesideFlag makes [ReplaceCommand] move a destination's entries into a
// directory beside it (DST/../.denv-restore-RANDOM) rather than inside
// it, and remove them after it wrote "finished": the new contents are
// complete and alone in DST at once, and the removal of the former ones
// (about as long as their copy, here: ext4 frees a cached 64 MiB file in
// 30-40 ms) is off the caller's path. For a process on the engine's host,
// where a volume's directory (_data) has a parent of the engine's, on the
// same filesystem, that no container sees; not for a copier container,
// whose parents of its mounts are its read-only root.
const BesideFlag = "--aside-beside"

// replaceTrees is [ReplaceCommand] after its go-ahead: args are the pairs,
// a close of abort stops it; beside is [BesideFlag].
func replaceTrees(args []string, abort <-chan struct{}, out io.Writer, beside bool) error {
	var mu sync.Mutex
	emit := func(tree int) func(kind string, n int64) {
		return func(kind string, n int64) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(out, "%s %d %d\n", kind, tree, n)
		}
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		return err
	}
	name := AsidePrefix + hex.EncodeToString(suffix)
	var moved []aside
	undo := func(cause error) error {
		var errs []string
		for i := len(moved) - 1; i >= 0; i-- {
			if err := moved[i].putBack(); err != nil {
				errs = append(errs, fmt.Sprintf("%s may hold part of the new data; its former entries are in %s (%v)", moved[i].dst, moved[i].dir, err))
			}
		}
		if len(errs) > 0 {
			// one line: the caller shows the copier's last line
			return fmt.Errorf("%w, and putting back failed: %s", cause, strings.Join(errs, "; "))
		}
		mu.Lock()
		fmt.Fprintln(out, KindUndone)
		mu.Unlock()
		return fmt.Errorf("%w (every destination is as it was)", cause)
	}
	for i := 0; i < len(args); i += 2 {
		// one name per pair: destinations beside each other may share
		// their parent
		a, err := moveAside(args[i+1], fmt.Sprintf("%s-%d", name, i/2), beside)
		if a.dir != "" {
			moved = append(moved, a)
		}
		if err != nil {
			return undo(err)
		}
	}
	for i := 0; i < len(args); i += 2 {
		if err := copyTree(args[i], args[i+1], emit(i/2), abort); err != nil {
			if errors.Is(err, errAborted) {
				err = errors.New("replacement interrupted")
			}
			return undo(err)
		}
	}
	// every copy is complete: the new contents stay, whatever follows
	if beside {
		mu.Lock()
		_, err := fmt.Fprintln(out, KindFinished)
		mu.Unlock()
		// The caller may be gone by now: nothing more is written (a
		// write to its closed pipe would end this process), and what
		// cannot be removed stays beside the volume's directory, which
		// no container sees, until the volume is removed.
		for _, a := range moved {
			_ = os.RemoveAll(a.dir)
		}
		return err
	}
	var errs []string
	for i, a := range moved {
		err := os.RemoveAll(a.dir)
		if err == nil {
			// the removal changed the time the copy gave the root
			var info fs.FileInfo
			if info, err = os.Lstat(args[2*i]); err == nil {
				err = setMeta(a.dst, info, false)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("the new contents of %s are in place, but removing its former entries (%s) failed: %v", a.dst, a.dir, err))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	_, err := fmt.Fprintln(out, KindFinished)
	return err
}

// aside is a destination whose entries were moved into dir.
type aside struct {
	dst, dir string
	info     fs.FileInfo // dst's own mode, owner and times
}

// moveAside moves every entry of dst into the new directory dst/name
// (with beside, dst/../name). On error, what was moved is in the returned
// aside (dir empty if it was not made).
func moveAside(dst, name string, beside bool) (aside, error) {
	info, err := os.Lstat(dst)
	if err != nil {
		return aside{}, err
	}
	if !info.IsDir() {
		return aside{}, fmt.Errorf("%s is not a directory", dst)
	}
	entries, err := os.ReadDir(dst)
	if err != nil {
		return aside{}, err
	}
	a := aside{dst: dst, dir: filepath.Join(dst, name), info: info}
	if beside {
		a.dir = filepath.Join(filepath.Dir(filepath.Clean(dst)), name)
	}
	if err := os.Mkdir(a.dir, 0o700); err != nil {
		return aside{}, err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(dst, e.Name()), filepath.Join(a.dir, e.Name())); err != nil {
			return a, err
		}
	}
	return a, nil
}

// putBack removes every entry of a.dst but a.dir, moves the entries of
// a.dir back, removes it and gives a.dst its former mode, owner and times.
func (a aside) putBack() error {
	base := filepath.Base(a.dir)
	entries, err := os.ReadDir(a.dst)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != base {
			if err := os.RemoveAll(filepath.Join(a.dst, e.Name())); err != nil {
				return err
			}
		}
	}
	entries, err = os.ReadDir(a.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(a.dir, e.Name()), filepath.Join(a.dst, e.Name())); err != nil {
			return err
		}
	}
	if err := os.Remove(a.dir); err != nil {
		return err
	}
	return setMeta(a.dst, a.info, false)
}
