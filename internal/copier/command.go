package copier

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// The kinds of [Event], the first word of a progress line.
const (
	KindTotal    = "total"
	KindCopied   = "copied"
	KindDone     = "done"
	KindFinished = "finished"
	// KindUndone is the last line of a [ReplaceCommand] that failed or
	// was interrupted and put every destination back as it was.
	KindUndone = "undone"
)

// WaitFlag makes [Command] wait for the line "go" on its input before it
// touches anything, so that its container can be started ahead of time.
const WaitFlag = "--wait"

// goLine is what [Command] waits for with [WaitFlag].
const goLine = "go"

// Event is one progress line of [Command]:
//
//	total I BYTES    tree I holds BYTES in regular files
//	copied I BYTES   BYTES of tree I copied so far (at most every 100 ms)
//	done I BYTES     tree I is copied
//	finished         every tree is copied; nothing more is written
//	undone           (ReplaceCommand) failed, every destination as it was
type Event struct {
	Kind  string // KindTotal, KindCopied, KindDone, KindFinished or KindUndone
	Tree  int
	Bytes int64
}

// ParseEvent parses one progress line of [Command] (without its newline).
func ParseEvent(line string) (Event, bool) {
	f := strings.Fields(line)
	if len(f) == 1 && (f[0] == KindFinished || f[0] == KindUndone) {
		return Event{Kind: f[0]}, true
	}
	if len(f) != 3 {
		return Event{}, false
	}
	switch f[0] {
	case KindTotal, KindCopied, KindDone:
	default:
		return Event{}, false
	}
	tree, err1 := strconv.Atoi(f[1])
	n, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || tree < 0 || n < 0 {
		return Event{}, false
	}
	return Event{Kind: f[0], Tree: tree, Bytes: n}, true
}

// Command is the volume copy as it runs inside the engine:
//
//	[--wait] SRC DST [SRC DST]...
//
// For each pair in order, it empties DST (the engine may have filled a new
// volume with the image's files when a container of it was created) and
// copies SRC into it like [Copy], writing [Event] lines to out. With
// [WaitFlag] it first waits for the line "go" on in; anything else (an
// end of input: the caller went away) ends it with an error before any
// change.
func Command(args []string, in io.Reader, out io.Writer) error {
	args, _, err := parsePairs(args, in)
	if err != nil {
		return err
	}
	return CopyPairs(args, nil, out)
}

// CopyPairs is [Command] after its go-ahead, for a caller in the same
// process: args are SRC DST pairs, and a close of abort (nil: never)
// stops it with an error, leaving what it copied.
func CopyPairs(args []string, abort <-chan struct{}, out io.Writer) error {
	if len(args) == 0 || len(args)%2 != 0 {
		return errors.New("usage: SRC DST [SRC DST]...")
	}
	var mu sync.Mutex
	for i := 0; i < len(args); i += 2 {
		tree := i / 2
		if err := Clear(args[i+1]); err != nil {
			return err
		}
		err := copyTree(args[i], args[i+1], func(kind string, n int64) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(out, "%s %d %d\n", kind, tree, n)
		}, abort)
		if err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(out, KindFinished)
	return err
}

// parsePairs reads the arguments of [Command] and [ReplaceCommand] and,
// with [WaitFlag], waits for the go-ahead on in; it returns the pairs'
// arguments and the reader of the rest of in (nil without WaitFlag).
func parsePairs(args []string, in io.Reader) ([]string, *bufio.Reader, error) {
	wait := len(args) > 0 && args[0] == WaitFlag
	if wait {
		args = args[1:]
	}
	if len(args) == 0 || len(args)%2 != 0 {
		return nil, nil, fmt.Errorf("usage: [%s] SRC DST [SRC DST]...", WaitFlag)
	}
	if !wait {
		return args, nil, nil
	}
	br := bufio.NewReader(in)
	line, err := br.ReadString('\n')
	if strings.TrimSpace(line) != goLine {
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("no go-ahead received")
		}
		return nil, nil, fmt.Errorf("copy not started: %w", err)
	}
	return args, br, nil
}

// Go is the line that lets a [Command] started with [WaitFlag] begin.
func Go() string { return goLine + "\n" }

// Clear removes everything inside dir, but not dir itself.
func Clear(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
