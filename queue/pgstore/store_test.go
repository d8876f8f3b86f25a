//go:build unix

package pgstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/pgstore"
	"github.com/faxhook/caddy-faxhook/queue/pgstore/pgtest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func job(id, chain string, due time.Time) *queue.Job {
	return &queue.Job{ID: id, EventID: "ev-" + id, URL: "https://a.example/h", Chain: chain, CreatedAt: due, DueAt: due,
		Payload: queue.Payload{Fields: []queue.Field{{Name: "f", Value: id}}}}
}

func mustUpdate(t testing.TB, s queue.Store, fn func(queue.Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// Neither a malformed DSN nor one the server refuses shows up in the error, password or not.
func TestDSNNeverInErrors(t *testing.T) {
	ctx := context.Background()
	for _, dsn := range []string{
		"postgres://faxuser:s3cr3t-pw@127.0.0.1:notaport/db",
		"postgres://faxuser:s3cr3t-pw@[::1/db",
		"host=127.0.0.1 port=x password=s3cr3t-pw user=faxuser",
		"host=127.0.0.1 password='s3cr3t-pw user=faxuser",
		"postgres://faxuser:s3cr3t-pw@127.0.0.1:1/db?connect_timeout=2",
		"postgres://faxuser:s3cr3t-pw@127.0.0.1:1/db?sslmode=bogus",
	} {
		_, err := pgstore.Open(ctx, dsn, pgstore.Options{})
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if msg := err.Error(); strings.Contains(msg, "s3cr3t-pw") || strings.Contains(msg, dsn) {
			t.Errorf("the error of Open(%q) shows the DSN: %s", dsn, msg)
		} else {
			t.Logf("%s", msg)
		}
	}
}

// Processes that open a new database at once create its schema once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := pgtest.Start(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	stores := make(chan *pgstore.Store, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := pgstore.Open(context.Background(), dsn, pgstore.Options{})
			if err != nil {
				errs <- err
				return
			}
			stores <- st
		}()
	}
	wg.Wait()
	close(errs)
	close(stores)
	for err := range errs {
		t.Error(err)
	}
	var st *pgstore.Store
	for s := range stores {
		st = s
		defer s.Close()
	}
	if st == nil {
		t.FailNow()
	}
	var n, v int
	if err := st.Pool().QueryRow(context.Background(), "SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != v || n < 1 {
		t.Errorf("schema_migrations: %d rows up to version %d, want one per version", n, v)
	}
}

// A schema written by a newer faxhook is refused, not used.
func TestNewerSchemaRefused(t *testing.T) {
	dsn := pgtest.Start(t)
	st, err := pgstore.Open(context.Background(), dsn, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(context.Background(), "INSERT INTO schema_migrations (version) VALUES (1000)"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := pgstore.Open(context.Background(), dsn, pgstore.Options{}); err == nil || !strings.Contains(err.Error(), "newer faxhook") {
		t.Errorf("Open of a schema at version 1000 = %v, want a refusal", err)
	}
	if _, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: "Bad-Name"}); err == nil {
		t.Error("Open with a schema name that needs quoting succeeded")
	}
}

// Stores in two schemas of one database are independent.
func TestSchemasAreIndependent(t *testing.T) {
	dsn := pgtest.Start(t)
	a, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: "fleet_a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: "fleet_b"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustUpdate(t, a, func(tx queue.Tx) error { _, err := tx.Enqueue(job("x", "", t0)); return err })
	err = b.View(func(tx queue.Tx) error { _, err := tx.Job("x"); return err })
	if !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("the job of schema fleet_a in fleet_b: %v", err)
	}
}

// Transactions that take state locks in opposite orders deadlock; PostgreSQL aborts one, and
// Update runs it again: both commit.
func TestDeadlockIsRetried(t *testing.T) {
	st := open(t, pgstore.Options{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	runs := 0
	errs := make(chan error, 2)
	for g, keys := range [][2]string{{"k1", "k2"}, {"k2", "k1"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- st.Update(func(tx queue.Tx) error {
				mu.Lock()
				runs++
				mu.Unlock()
				if _, err := tx.State(keys[0]); err != nil && !errors.Is(err, queue.ErrNotFound) {
					return err
				}
				time.Sleep(100 * time.Millisecond) // both hold their first lock
				if _, err := tx.State(keys[1]); err != nil && !errors.Is(err, queue.ErrNotFound) {
					return err
				}
				return tx.PutState(fmt.Sprint("done", g), []byte("1"))
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if runs < 3 {
		t.Errorf("fn ran %d times: no deadlock was retried", runs)
	}
	err := st.View(func(tx queue.Tx) error {
		for _, k := range []string{"done0", "done1"} {
			if _, err := tx.State(k); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// A View sees one snapshot: what commits meanwhile does not show.
func TestViewIsOneSnapshot(t *testing.T) {
	st := open(t, pgstore.Options{})
	mustUpdate(t, st, func(tx queue.Tx) error { _, err := tx.Enqueue(job("a", "", t0)); return err })
	err := st.View(func(tx queue.Tx) error {
		before, err := tx.Counts()
		if err != nil {
			return err
		}
		mustUpdate(t, st, func(tx queue.Tx) error { _, err := tx.Enqueue(job("b", "", t0)); return err })
		after, err := tx.Counts()
		if err != nil {
			return err
		}
		if before[queue.StatePending] != 1 || after[queue.StatePending] != 1 {
			t.Errorf("pending in one View: %d, then %d; want 1 both times", before[queue.StatePending], after[queue.StatePending])
		}
		_, err = tx.Job("b")
		if !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("a View sees a job committed after its first read: %v", err)
		}
		return tx.PutState("x", nil)
	})
	if err == nil {
		t.Error("a write in a View succeeded")
	}
}

// EnqueueAll enqueues in one go what Enqueue does one by one: the new jobs, chained ones
// waiting behind the first of their chain, existing IDs reported as such.
func TestEnqueueAll(t *testing.T) {
	st := open(t, pgstore.Options{})
	mustUpdate(t, st, func(tx queue.Tx) error { _, err := tx.Enqueue(job("old", "", t0)); return err })
	jobs := []*queue.Job{job("a1", "A", t0), job("old", "", t0), job("a2", "A", t0), job("b1", "B", t0), job("a1", "A", t0), job("n", "", t0)}
	var ok []bool
	mustUpdate(t, st, func(tx queue.Tx) (err error) { ok, err = queue.EnqueueAll(tx, jobs); return err })
	if fmt.Sprint(ok) != "[true false true true false true]" {
		t.Errorf("EnqueueAll reported %v", ok)
	}
	var states []string
	for _, j := range jobs {
		states = append(states, j.State)
	}
	if got := strings.Join(states, " "); got != "pending  waiting pending  pending" { // the existing IDs' jobs untouched
		t.Errorf("states set: %q", got)
	}
	var c map[string]int64
	mustUpdate(t, st, func(tx queue.Tx) (err error) { c, err = tx.Counts(); return err })
	if c[queue.StatePending] != 4 || c[queue.StateWaiting] != 1 {
		t.Errorf("Counts = %v", c)
	}
}

// UpdateLazy commits without waiting for the disk; Update waits.
func TestUpdateLazyCommitsAsynchronously(t *testing.T) {
	st := open(t, pgstore.Options{})
	settings := map[bool]string{}
	for _, lazy := range []bool{false, true} {
		run := st.Update
		if lazy {
			run = st.UpdateLazy
		}
		err := run(func(tx queue.Tx) error {
			v, err := pgstore.Setting(tx, "synchronous_commit")
			settings[lazy] = v
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if settings[false] != "on" || settings[true] != "off" {
		t.Errorf("synchronous_commit: %q in Update, %q in UpdateLazy; want on, off", settings[false], settings[true])
	}
}

// terminate ends the server sessions in st's database, but its own, that match query.
func terminate(t *testing.T, st *pgstore.Store, query string) int {
	t.Helper()
	var n int
	err := st.Pool().QueryRow(context.Background(),
		"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND "+query).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func received(ch <-chan struct{}, within time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(within):
		return false
	}
}

// A commit that makes a job pending wakes the other stores on the database; one that does not
// (a retry hours away, a claim) does not; a listener that lost its connection reconnects and
// wakes its store at once, since it may have missed some.
func TestWakeups(t *testing.T) {
	dsn := pgtest.Start(t)
	opts := pgstore.Options{LeaderInterval: 200 * time.Millisecond}
	a, err := pgstore.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := pgstore.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other, err := pgstore.Open(context.Background(), dsn, pgstore.Options{Schema: "other"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	wake := b.Wakeups()
	// Wait for the listener: it wakes nothing until it listens.
	waitUntil(t, 5*time.Second, "the listener's connection", func() bool {
		var n int
		b.Pool().QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'faxhook-listener'").Scan(&n)
		return n == 1
	})
	mustUpdate(t, a, func(tx queue.Tx) error { _, err := tx.Enqueue(job("x", "", time.Now())); return err })
	if !received(wake, 5*time.Second) {
		t.Fatal("no wake-up after an enqueue in another store")
	}
	mustUpdate(t, other, func(tx queue.Tx) error { _, err := tx.Enqueue(job("x", "", time.Now())); return err })
	mustUpdate(t, a, func(tx queue.Tx) error { // a claim moves the job later
		j, err := tx.JobHead("x")
		if err != nil {
			return err
		}
		j.Lease, j.DueAt = "me", time.Now().Add(time.Minute)
		return tx.PutJobHead(j)
	})
	mustUpdate(t, a, func(tx queue.Tx) error { // a retry in hours
		j, err := tx.JobHead("x")
		if err != nil {
			return err
		}
		j.Lease, j.DueAt = "", time.Now().Add(5*time.Hour)
		return tx.PutJobHead(j)
	})
	if received(wake, 300*time.Millisecond) {
		t.Fatal("a wake-up from another schema, a claim or a retry hours away")
	}
	mustUpdate(t, a, func(tx queue.Tx) error { _, err := queue.Replay(tx, "x", time.Now()); return err })
	if !received(wake, 5*time.Second) {
		t.Fatal("no wake-up after a replay")
	}
	if n := terminate(t, b, "application_name = 'faxhook-listener'"); n != 1 {
		t.Fatalf("terminated %d listeners, want 1", n)
	}
	if !received(wake, 5*time.Second) {
		t.Fatal("no wake-up after the listener reconnected")
	}
	mustUpdate(t, a, func(tx queue.Tx) error { _, err := tx.Enqueue(job("y", "", time.Now())); return err })
	if !received(wake, 5*time.Second) {
		t.Fatal("no wake-up after an enqueue, once reconnected")
	}
}

// One of several candidates holds a role; when its holder closes, or its connection is cut,
// another takes over, and a cut holder reports the loss at once.
func TestLeadership(t *testing.T) {
	dsn := pgtest.Start(t)
	const interval = 100 * time.Millisecond
	var stores []*pgstore.Store
	var leaders []*pgstore.Leadership
	for range 3 {
		st, err := pgstore.Open(context.Background(), dsn, pgstore.Options{LeaderInterval: interval})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stores = append(stores, st)
		leaders = append(leaders, st.Leader("janitor"))
	}
	other := stores[0].Leader("another role") // independent of janitor
	holder := func() int {
		h := -1
		for i, l := range leaders {
			if l.Held() {
				if h >= 0 {
					t.Fatalf("candidates %d and %d both hold the role", h, i)
				}
				h = i
			}
		}
		return h
	}
	waitUntil(t, 5*time.Second, "a holder", func() bool { return holder() >= 0 })
	waitUntil(t, 5*time.Second, "the other role's holder", other.Held)
	h := holder()
	select {
	case <-leaders[h].Changes():
	default:
		t.Error("no change reported when the role was taken")
	}
	time.Sleep(3 * interval)
	if holder() != h {
		t.Fatal("the role moved without cause")
	}
	// The holder closes: another takes over within about an interval.
	leaders[h].Close()
	if leaders[h].Held() {
		t.Error("a closed candidate holds the role")
	}
	took := waitUntil(t, 5*time.Second, "a new holder after Close", func() bool { return holder() >= 0 })
	t.Logf("taken over %s after the holder closed", took)
	// The holder's connection is cut: it reports the loss at once, before reconnecting.
	h = holder()
	pid := pgstore.LeaderPID(leaders[h])
	if n := terminate(t, stores[0], fmt.Sprint("pid = ", pid)); n != 1 {
		t.Fatalf("terminated %d sessions, want 1", n)
	}
	lost := waitUntil(t, 5*time.Second, "the cut holder to report the loss", func() bool { return !leaders[h].Held() })
	t.Logf("the cut holder reported the loss after %s", lost)
	took = waitUntil(t, 5*time.Second, "a new holder after the cut", func() bool { return holder() >= 0 })
	t.Logf("taken over %s after the cut", took)
	// The store's Close releases its roles.
	h = holder()
	stores[h].Close()
	waitUntil(t, 5*time.Second, "a new holder after the store closed", func() bool { i := holder(); return i >= 0 && i != h })
}

// A process that holds a role and is killed loses it at once: another process takes over
// within about one interval. The test runs a copy of the test binary as that process.
func TestLeaderTakeoverAfterKill(t *testing.T) {
	if os.Getenv("PGSTORE_HELPER_DSN") != "" {
		t.Skip("runs in the parent only")
	}
	dsn := pgtest.Start(t)
	const interval = 100 * time.Millisecond
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLeader$", "-test.v")
	cmd.Env = append(os.Environ(), "PGSTORE_HELPER_DSN="+dsn)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(out)
	held := false
	for !held && lines.Scan() {
		held = strings.Contains(lines.Text(), "HELD")
	}
	if !held {
		t.Fatal("the helper process never held the role")
	}
	st, err := pgstore.Open(context.Background(), dsn, pgstore.Options{LeaderInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := st.Leader("janitor")
	time.Sleep(3 * interval)
	if l.Held() {
		t.Fatal("the role is held twice")
	}
	cmd.Process.Kill()
	took := waitUntil(t, 5*time.Second, "the takeover after the kill", l.Held)
	cmd.Wait()
	t.Logf("took over %s after the holder was killed", took)
	if took > 10*interval {
		t.Errorf("the takeover took %s, want about one interval (%s)", took, interval)
	}
}

// TestHelperLeader is the process that TestLeaderTakeoverAfterKill kills.
func TestHelperLeader(t *testing.T) {
	dsn := os.Getenv("PGSTORE_HELPER_DSN")
	if dsn == "" {
		t.Skip("a helper of TestLeaderTakeoverAfterKill")
	}
	st, err := pgstore.Open(context.Background(), dsn, pgstore.Options{LeaderInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l := st.Leader("janitor")
	for !l.Held() {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("HELD")
	time.Sleep(time.Minute)
}
