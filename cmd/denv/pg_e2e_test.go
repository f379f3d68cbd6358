package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend/backendtest"
)

// pgImage is Debian's PostgreSQL 15 as a local image
// (scripts/pg-image.sh, `make images`): it initdb's PGDATA
// (/var/lib/postgresql/data) on first start and runs postgres on port
// 5432 of all addresses, trust authentication; its shell and the
// PostgreSQL client programs (psql, pg_isready, pgbench) serve as clients.
const pgImage = "denv-test/postgres:15"

// pgE2E is e2e for the tests that run PostgreSQL, which also need
// pgImage; it returns a name for the test's environment, removed when the
// test ends.
func pgE2E(t *testing.T) string {
	t.Helper()
	b := e2e(t)
	_, ok, err := b.ImageLabels(context.Background(), pgImage)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		msg := fmt.Sprintf("image %s is missing: run make images (scripts/pg-image.sh)", pgImage)
		if os.Getenv(backendtest.EnvVar) == "require" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	id := backendtest.ProjectName(t)
	downOnCleanup(t, b, id)
	return id
}

// execIn runs cmd in container ctr (as its image's user) and returns its
// output (standard output and error together) and exit code.
func execIn(t *testing.T, c *client.Client, ctr string, cmd ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ex, err := c.ExecCreate(ctx, ctr, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	att, err := c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, att.Reader)
	att.Close()
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	for {
		in, err := c.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			t.Fatalf("exec %q: %v", cmd, err)
		}
		if !in.Running {
			return out.String(), in.ExitCode
		}
		select {
		case <-ctx.Done():
			t.Fatalf("exec %q: still running", cmd)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// psql runs one SQL string through psql in the db container (unaligned,
// tuples only, stop on the first error) and returns its output trimmed.
func psql(t *testing.T, c *client.Client, ctr, sql string) string {
	t.Helper()
	out, code := execIn(t, c, ctr, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-c", sql)
	if code != 0 {
		t.Fatalf("psql %q: exit %d\n%s", sql, code, out)
	}
	return strings.TrimSpace(out)
}

// appCmd is the app's command in TestE2EReadyPostgres: it connects to db
// once, at its start, with no retry, records the connection in a table of
// db and says how it went; then it idles until stopped.
const appCmd = `psql -X -h db -v ON_ERROR_STOP=1 -c "CREATE TABLE IF NOT EXISTS app_starts (at timestamptz); INSERT INTO app_starts VALUES (now())" && echo app-connect-ok || echo app-connect-failed; trap "exit 0" TERM; sleep infinity & wait`

// TestE2EReadyPostgres runs Debian's PostgreSQL with READY pg_isready and
// an app in the same image that LINKs db and connects to it once when it
// starts (psql, no retry loop). denv run returns once db is ready; the
// app's only connection succeeded, as its log and the row it wrote in db
// show. After denv stop and start (db recovering nothing, but starting
// again) the app's second start connects at once too.
func TestE2EReadyPostgres(t *testing.T) {
	id := pgE2E(t)
	def := writeDef(t, `IMAGE `+pgImage+` AS db VOLUME data:/var/lib/postgresql/data
  READY "pg_isready -q -h 127.0.0.1" WITHIN 2m
IMAGE `+pgImage+` AS app LINK db
  CMD ["sh", "-c", `+strconv.Quote(appCmd)+`]
EXPOSE app
`)
	mustDenv(t, "run", def, "-n", id)
	c := dockerClient(t)
	db := containerOf(t, c, id, "db")
	if h := db.Container.State.Health; h == nil || h.Status != "healthy" {
		t.Fatalf("db health when run returned: %+v", h)
	}
	app := containerOf(t, c, id, "app").Container.ID
	appConnected := func(n int) {
		t.Helper()
		var logs string
		poll(t, "the app's connection to db", func() error {
			logs = containerLogs(t, c, app)
			if strings.Count(logs, "app-connect-") < n {
				return fmt.Errorf("%d connection results in the app's logs, want %d:\n%s", strings.Count(logs, "app-connect-"), n, logs)
			}
			return nil
		})
		if strings.Count(logs, "app-connect-ok") != n || strings.Contains(logs, "app-connect-failed") {
			t.Fatalf("the app's connection at its start %d failed; its logs:\n%s\ndb's logs:\n%s", n, logs, containerLogs(t, c, db.Container.ID))
		}
		if got := psql(t, c, db.Container.ID, "SELECT count(*) FROM app_starts"); got != fmt.Sprint(n) {
			t.Errorf("db has %s rows of the app's starts, want %d", got, n)
		}
	}
	appConnected(1)
	// PostgreSQL's own log: the cluster was made at this start.
	if logs := containerLogs(t, c, db.Container.ID); !strings.Contains(logs, "database system is ready to accept connections") {
		t.Errorf("db's log lacks PostgreSQL's ready line:\n%s", logs)
	}

	mustDenv(t, "stop", id)
	mustDenv(t, "start", id)
	if h := containerOf(t, c, id, "db").Container.State.Health; h == nil || h.Status != "healthy" {
		t.Fatalf("db health when start returned: %+v", h)
	}
	appConnected(2)
}

// TestE2ESnapshotPostgresUnderLoad takes a snapshot of Debian's
// PostgreSQL while pgbench writes to it, changes the data, restores the
// snapshot and checks what comes back: PostgreSQL recovers from the
// crash-consistent copy (its log says the copy was of a server not shut
// down), pgbench's balances agree (accounts, branches, tellers and
// history sum to the same), the indexes check clean (amcheck), and a
// table made after the snapshot is gone.
func TestE2ESnapshotPostgresUnderLoad(t *testing.T) {
	id := pgE2E(t)
	useStaticCopier(t)
	c := dockerClient(t)
	snap := id + "-s"
	removeSnapshotsOnCleanup(t, c, snap)
	def := writeDef(t, `IMAGE `+pgImage+` AS db VOLUME data:/var/lib/postgresql/data
  READY "pg_isready -q -h 127.0.0.1" WITHIN 2m
EXPOSE db
`)
	start := time.Now()
	phase := func(what string) { t.Logf("%s at %.1fs", what, time.Since(start).Seconds()) }
	mustDenv(t, "run", def, "-n", id)
	phase("run")
	db := containerOf(t, c, id, "db").Container.ID
	if out, code := execIn(t, c, db, "pgbench", "-i", "-q", "-s", "1"); code != 0 {
		t.Fatalf("pgbench -i: exit %d\n%s", code, out)
	}

	// pgbench in the background, inside db's container (paused with it
	// during the copy), until the test interrupts it.
	ctx := context.Background()
	bench, err := c.ExecCreate(ctx, db, client.ExecCreateOptions{
		Cmd: []string{"sh", "-c", "echo $$ >/tmp/pgbench.pid; exec pgbench -n -c 2 -T 600 >/tmp/pgbench.log 2>&1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecStart(ctx, bench.ID, client.ExecStartOptions{Detach: true}); err != nil {
		t.Fatal(err)
	}
	benchRunning := func() bool {
		in, err := c.ExecInspect(ctx, bench.ID, client.ExecInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return in.Running
	}
	// Some transactions first, then the snapshot while more run.
	poll(t, "pgbench writing", func() error {
		if !benchRunning() {
			out, _ := execIn(t, c, db, "cat", "/tmp/pgbench.log")
			t.Fatalf("pgbench ended early:\n%s", out)
		}
		if n, _ := strconv.Atoi(psql(t, c, db, "SELECT count(*) FROM pgbench_history")); n < 10 {
			return fmt.Errorf("%d transactions in pgbench_history, want 10 or more", n)
		}
		return nil
	})
	phase("pgbench -i, pgbench writing")
	mustDenv(t, "snapshot", id, "-n", snap)
	phase("snapshot")
	if !benchRunning() {
		out, _ := execIn(t, c, db, "cat", "/tmp/pgbench.log")
		t.Fatalf("pgbench did not run through the snapshot:\n%s", out)
	}
	if out, code := execIn(t, c, db, "sh", "-c", "kill -INT $(cat /tmp/pgbench.pid)"); code != 0 {
		t.Fatalf("interrupting pgbench: exit %d\n%s", code, out)
	}
	poll(t, "pgbench ends", func() error {
		if benchRunning() {
			return fmt.Errorf("pgbench still running")
		}
		return nil
	})

	// Changes after the snapshot, which the restore must undo.
	psql(t, c, db, "CREATE TABLE after_snapshot (x int); INSERT INTO after_snapshot VALUES (1)")
	after := psql(t, c, db, "SELECT count(*) FROM pgbench_history")

	phase("pgbench stopped, data changed")
	mustDenv(t, "restore", id, snap)
	phase("restore")
	db = containerOf(t, c, id, "db").Container.ID
	// The copy was of a running server: PostgreSQL replays its WAL.
	logs := containerLogs(t, c, db)
	if !strings.Contains(logs, "database system was not properly shut down; automatic recovery in progress") {
		t.Errorf("db's log after the restore shows no crash recovery:\n%s", logs)
	}
	if got := psql(t, c, db, "SELECT to_regclass('after_snapshot') IS NULL"); got != "t" {
		t.Errorf("table after_snapshot, made after the snapshot, is still there after the restore")
	}
	sums := psql(t, c, db, `SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' ||
		(SELECT sum(bbalance) FROM pgbench_branches) || ' ' ||
		(SELECT sum(tbalance) FROM pgbench_tellers) || ' ' ||
		(SELECT sum(delta) FROM pgbench_history) || ' ' ||
		(SELECT count(*) FROM pgbench_history)`)
	f := strings.Fields(sums)
	if len(f) != 5 || f[0] != f[1] || f[1] != f[2] || f[2] != f[3] {
		t.Errorf("pgbench balances disagree after the restore (accounts branches tellers history count): %s", sums)
	}
	if n, _ := strconv.Atoi(f[len(f)-1]); len(f) == 5 && n < 10 {
		t.Errorf("the restored pgbench_history has %s transactions, want the 10 or more before the snapshot", f[4])
	}
	t.Logf("restored: sums %s; %s transactions when pgbench stopped", sums, after)
	psql(t, c, db, "CREATE EXTENSION amcheck")
	for _, idx := range []string{"pgbench_accounts_pkey", "pgbench_branches_pkey", "pgbench_tellers_pkey"} {
		psql(t, c, db, "SELECT bt_index_check('"+idx+"', true)")
	}
	phase("checked")
}
