package records

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment variables that make the test binary a claimant: it reserves
// DENV_ENVS_TEST_ID in the store DENV_ENVS_TEST_DIR, prints "reserved" (or
// the error), and waits for its stdin to close or to be killed.
const (
	helperDir = "DENV_ENVS_TEST_DIR"
	helperID  = "DENV_ENVS_TEST_ID"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperDir); dir != "" {
		os.Exit(claimant(dir, os.Getenv(helperID)))
	}
	os.Exit(m.Run())
}

// claimant is the re-executed test binary's job.
func claimant(dir, id string) int {
	s, err := Open(dir)
	if err == nil {
		_, err = s.Reserve(id)
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("reserved")
	os.Stdin.Read(make([]byte, 1)) // until killed (or the test ends)
	return 0
}

// startClaimant starts a process that reserves id in s and returns it once
// it answered, with its first line ("reserved" or "error: ...").
func startClaimant(t *testing.T, s *Store, id string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperDir+"="+s.Dir(), helperID+"="+id)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("claimant: %v", err)
	}
	return cmd, strings.TrimSpace(line)
}

// kill SIGKILLs the claimant and waits until it is gone.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("claimant did not die of SIGKILL: %v", err)
	}
}

// incomplete returns the one incomplete ID of s.
func incomplete(t *testing.T, s *Store) Incomplete {
	t.Helper()
	list, err := s.Incomplete()
	if err != nil || len(list) != 1 {
		t.Fatalf("Incomplete = %+v, %v; want one", list, err)
	}
	return list[0]
}

func TestKilledClaimantDoesNotWedgeTheID(t *testing.T) {
	s, _ := Open(t.TempDir())
	before := time.Now().Add(-time.Second)
	cmd, line := startClaimant(t, s, "x")
	if line != "reserved" {
		t.Fatalf("claimant: %s", line)
	}

	// While the claimant lives: incomplete and alive, never taken.
	if inc := incomplete(t, s); inc.ID != "x" || !inc.Alive || inc.PID != cmd.Process.Pid || inc.Created.Before(before) || inc.Created.After(time.Now()) {
		t.Fatalf("Incomplete of a living claim = %+v (claimant pid %d)", inc, cmd.Process.Pid)
	}
	_, err := s.Reserve("x")
	var ie *IncompleteError
	if !errors.As(err, &ie) || !ie.Alive || !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "already exists: another denv process (pid") {
		t.Fatalf("Reserve of a living claim = %v", err)
	}
	if _, err := s.TakeOver("x"); !errors.As(err, &ie) || !ie.Alive {
		t.Fatalf("TakeOver of a living claim = %v", err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("List = %+v", list)
	}

	kill(t, cmd)

	// Dead: incomplete, not alive; Reserve says how to get out.
	if inc := incomplete(t, s); inc.ID != "x" || inc.Alive || inc.PID != cmd.Process.Pid {
		t.Fatalf("Incomplete of a dead claim = %+v", inc)
	}
	_, err = s.Reserve("x")
	if !errors.As(err, &ie) || ie.Alive || !errors.Is(err, fs.ErrExist) || err.Error() != `environment "x" already exists as an interrupted run: remove it with 'denv rm --force x'` {
		t.Fatalf("Reserve of a dead claim = %v", err)
	}
	if _, err := s.Get("x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get = %v", err)
	}

	// Taken over: held by this process, so alive again to everyone else;
	// still claimed when it was first.
	first := incomplete(t, s).Created
	r, err := s.TakeOver("x")
	if err != nil {
		t.Fatal(err)
	}
	if inc := incomplete(t, s); !inc.Created.Equal(first) || inc.PID != os.Getpid() {
		t.Fatalf("after TakeOver: %+v, first claimed %v", inc, first)
	}
	if _, err := s.TakeOver("x"); !errors.As(err, &ie) || !ie.Alive || ie.PID != os.Getpid() {
		t.Fatalf("TakeOver of a taken-over claim = %v", err)
	}
	if inc := incomplete(t, s); !inc.Alive {
		t.Fatalf("Incomplete while taken over = %+v", inc)
	}
	if err := r.Abort(); err != nil {
		t.Fatal(err)
	}
	if list, err := s.Incomplete(); err != nil || len(list) != 0 {
		t.Fatalf("Incomplete after Abort = %+v, %v", list, err)
	}
	if _, err := s.Reserve("x"); err != nil {
		t.Fatalf("Reserve after the take-over's Abort: %v", err)
	}
}

func TestTakeOverAndCommit(t *testing.T) {
	s, _ := Open(t.TempDir())
	cmd, _ := startClaimant(t, s, "x")
	kill(t, cmd)
	r, err := s.TakeOver("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(Record{ID: "x", Project: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if list, err := s.Incomplete(); err != nil || len(list) != 0 {
		t.Fatalf("Incomplete after Commit = %+v, %v", list, err)
	}
	if _, err := s.Get("x"); err != nil {
		t.Fatal(err)
	}
	// recorded: not taken over, not reserved
	if _, err := s.TakeOver("x"); !errors.Is(err, fs.ErrExist) || errors.As(err, new(*IncompleteError)) {
		t.Fatalf("TakeOver of a record = %v", err)
	}
	if _, err := s.Reserve("x"); !errors.Is(err, fs.ErrExist) || err.Error() != `environment "x" already exists: file already exists` {
		t.Fatalf("Reserve of a record = %v", err)
	}
	if _, err := s.TakeOver("nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("TakeOver of nothing = %v", err)
	}
}

// Of several racing take-overs of one dead claim, exactly one wins.
func TestTakeOverRace(t *testing.T) {
	s, _ := Open(t.TempDir())
	cmd, _ := startClaimant(t, s, "x")
	kill(t, cmd)
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []*Reservation
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.TakeOver("x")
			mu.Lock()
			defer mu.Unlock()
			var ie *IncompleteError
			switch {
			case err == nil:
				won = append(won, r)
			case !errors.As(err, &ie) || !ie.Alive:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d take-overs won; want one", len(won))
	}
	won[0].Release()
}

// Of several processes racing to reserve one ID, exactly one wins.
func TestReserveRaceProcesses(t *testing.T) {
	s, _ := Open(t.TempDir())
	const n = 4
	lines := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, lines[i] = startClaimant(t, s, "same")
		}()
	}
	wg.Wait()
	won := 0
	for _, l := range lines {
		switch {
		case l == "reserved":
			won++
		case !strings.Contains(l, `environment "same" already exists`):
			t.Errorf("loser: %s", l)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d processes reserved one ID: %q", won, n, lines)
	}
}

// A directory without a lock file (left by an older denv, or a claimant
// killed between creating the directory and locking) has a dead claimant.
func TestDirWithoutLockIsIncomplete(t *testing.T) {
	s, _ := Open(t.TempDir())
	if err := os.Mkdir(filepath.Join(s.Dir(), "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if inc := incomplete(t, s); inc.ID != "old" || inc.Alive || inc.PID != 0 || inc.Created.IsZero() {
		t.Fatalf("Incomplete = %+v", inc)
	}
	r, err := s.TakeOver("old")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "old")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after Abort: %v", err)
	}
}

func TestReleaseLeavesDeadClaim(t *testing.T) {
	s, _ := Open(t.TempDir())
	r, err := s.Reserve("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	if inc := incomplete(t, s); inc.Alive || inc.PID != os.Getpid() {
		t.Fatalf("Incomplete after Release = %+v", inc)
	}
	if err := r.Abort(); err != nil { // released: nothing to abort
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "x")); err != nil {
		t.Fatalf("Abort after Release removed the directory: %v", err)
	}
}
