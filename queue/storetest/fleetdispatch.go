package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
)

// sharedStore presents a store as queue.Shared, so that dispatchers over it claim jobs in the
// store as they do in a fleet. Its wake-ups never come: the dispatchers find jobs by their
// fleet scan, which the suite sets short.
type sharedStore struct{ queue.Store }

func (sharedStore) Wakeups() <-chan struct{} { return nil }

// asShared returns s as a queue.Shared store.
func asShared(s queue.Store) queue.Shared {
	if sh, ok := s.(queue.Shared); ok {
		return sh
	}
	return sharedStore{s}
}

// fleetOptions are the options of a dispatcher that plays one process of a fleet.
func fleetOptions(name string) queue.Options {
	return queue.Options{Instance: name, FleetScan: 20 * time.Millisecond, Workers: 4, PerHost: 2}
}

// Two dispatchers over one shared store, as two processes of a fleet: every job is attempted
// once, by one of them, and the jobs of a chain in the order they were enqueued.
func testFleetDeliversEachJobOnce(t *testing.T, s queue.Store) {
	sh := asShared(s)
	var mu sync.Mutex
	attempts := map[string]int{}
	var order []string
	by := map[string]map[string]bool{}
	sender := func(name string) queue.Sender {
		return senderFunc(func(ctx context.Context, j *queue.Job) queue.Result {
			mu.Lock()
			attempts[j.ID]++
			order = append(order, j.ID)
			if by[name] == nil {
				by[name] = map[string]bool{}
			}
			by[name][j.ID] = true
			mu.Unlock()
			time.Sleep(time.Millisecond)
			return queue.Result{Status: 204}
		})
	}
	// Each leases no further ahead than over a store of its own (AheadBytes has room for no
	// job), so that both get work: leasing 16×PerHost ahead, the first to scan takes it all.
	optsA, optsB := fleetOptions("a"), fleetOptions("b")
	optsA.AheadBytes, optsB.AheadBytes = 1, 1
	a := queue.NewDispatcher(sh, sender("a"), optsA)
	b := queue.NewDispatcher(sh, sender("b"), optsB)
	for _, d := range []*queue.Dispatcher{a, b} {
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		defer d.Stop()
	}
	const chains, perChain = 20, 4
	now := time.Now()
	for c := range chains {
		update(t, s, func(tx queue.Tx) error {
			for i := range perChain {
				j := newJob(fmt.Sprintf("c%02d-%d", c, i), fmt.Sprintf("https://d%d.example/h", c%3), now)
				j.Chain = fmt.Sprintf("chain-%02d", c)
				if _, err := tx.Enqueue(j); err != nil {
					return err
				}
			}
			return nil
		})
	}
	waitFor(t, "every job delivered", func() bool {
		return checkCountsQuiet(t, s)[queue.StateDelivered] == chains*perChain
	})
	mu.Lock()
	defer mu.Unlock()
	for id, n := range attempts {
		if n != 1 {
			t.Errorf("job %s attempted %d times", id, n)
		}
	}
	if len(attempts) != chains*perChain {
		t.Errorf("%d jobs attempted, want %d", len(attempts), chains*perChain)
	}
	pos := map[string]int{}
	for i, id := range order {
		pos[id] = i
	}
	for c := range chains {
		for i := 1; i < perChain; i++ {
			prev, cur := fmt.Sprintf("c%02d-%d", c, i-1), fmt.Sprintf("c%02d-%d", c, i)
			if pos[cur] < pos[prev] {
				t.Errorf("chain %d: %s attempted before %s", c, cur, prev)
			}
		}
	}
	if len(by["a"]) == 0 || len(by["b"]) == 0 {
		t.Logf("one dispatcher did all the work (a %d, b %d): allowed, but the test then says less", len(by["a"]), len(by["b"]))
	}
	for _, id := range []string{"c00-0", "c19-3"} {
		if j := head(t, s, id); j.Lease != "" {
			t.Errorf("delivered job %s keeps its claim %q", id, j.Lease)
		}
	}
}

// A process that stalls past its claim loses the job to another one; the stalled attempt's
// late outcome, a failure that comes while the other process's attempt is under way, is not
// stored, and the other process's delivery is.
func testFleetExpiredClaim(t *testing.T, s queue.Store) {
	sh := asShared(s)
	stalled, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	slow := senderFunc(func(ctx context.Context, j *queue.Job) queue.Result {
		once.Do(func() { close(stalled) })
		<-release // a stalled process: it ignores its own deadline
		return queue.Result{Status: 500, Err: errors.New("500 from the stalled attempt")}
	})
	optsA := fleetOptions("a")
	optsA.Lease = 300 * time.Millisecond
	a := queue.NewDispatcher(sh, slow, optsA)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	update(t, s, func(tx queue.Tx) error {
		_, err := tx.Enqueue(newJob("x", "https://a.example/h", time.Now()))
		return err
	})
	<-stalled
	if j := head(t, s, "x"); j.Lease == "" || j.State != queue.StatePending || !j.DueAt.After(time.Now()) {
		t.Fatalf("a claimed job: %s, lease %q, due %s; want pending, claimed, due when the claim ends", j.State, j.Lease, j.DueAt)
	}
	claimA := head(t, s, "x").Lease
	bStarted, bRelease := make(chan struct{}), make(chan struct{})
	fast := senderFunc(func(ctx context.Context, j *queue.Job) queue.Result {
		close(bStarted)
		<-bRelease
		return queue.Result{Status: 204}
	})
	b := queue.NewDispatcher(sh, fast, fleetOptions("b"))
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	<-bStarted // b took the job over once a's claim had expired
	if j := head(t, s, "x"); j.Lease == claimA || j.Lease == "" {
		t.Errorf("claim while b attempts: %q, want b's (a's was %q)", j.Lease, claimA)
	}
	close(release)
	time.Sleep(150 * time.Millisecond) // a's late failure reaches its run loop and a round
	if j := head(t, s, "x"); len(j.Attempts) != 0 {
		t.Errorf("a's late outcome was stored over b's claim: %+v", j.Attempts)
	}
	close(bRelease)
	waitFor(t, "b's delivery stored", func() bool { return head(t, s, "x").State == queue.StateDelivered })
	j := head(t, s, "x")
	if len(j.Attempts) != 1 || j.Attempts[0].Status != 204 {
		t.Errorf("job after both outcomes: %s with attempts %+v; want b's one delivery", j.State, j.Attempts)
	}
	checkCounts(t, s)
}

// Jobs claimed ahead of a slow destination's attempts are not left to wait past their claims:
// with one attempt at a time per destination, each longer than a third of the lease, the jobs
// a process claims ahead would otherwise start after their claims expired, when the other
// process has claimed them too. Each job is attempted once.
func testFleetSlowDestination(t *testing.T, s queue.Store) {
	sh := asShared(s)
	var mu sync.Mutex
	attempts := map[string]int{}
	slow := senderFunc(func(ctx context.Context, j *queue.Job) queue.Result {
		mu.Lock()
		attempts[j.ID]++
		mu.Unlock()
		select {
		case <-time.After(150 * time.Millisecond):
			return queue.Result{Status: 204}
		case <-ctx.Done():
			return queue.Result{Err: ctx.Err()}
		}
	})
	var ds []*queue.Dispatcher
	for _, name := range []string{"a", "b"} {
		opts := fleetOptions(name)
		opts.PerHost, opts.Lease = 1, 400*time.Millisecond
		d := queue.NewDispatcher(sh, slow, opts)
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		defer d.Stop()
		ds = append(ds, d)
	}
	const jobs = 10
	enqueue(t, s, jobsTo("s", "https://slow.example/h", jobs)...)
	waitFor(t, "every job delivered", func() bool {
		return checkCountsQuiet(t, s)[queue.StateDelivered] == jobs
	})
	mu.Lock()
	defer mu.Unlock()
	for id, n := range attempts {
		if n != 1 {
			t.Errorf("job %s attempted %d times", id, n)
		}
	}
	if len(attempts) != jobs {
		t.Errorf("%d jobs attempted, want %d", len(attempts), jobs)
	}
}

// Over a shared store a dispatcher claims the jobs of a destination whose attempts are quick
// far ahead of its workers, but not large ones: beyond 2×PerHost per destination, the payloads
// it holds ahead stay within AheadBytes. Two destinations answer their first attempts at once
// and then hang: the one with small jobs has deep claims, the one with large jobs few; a third
// destination's jobs are delivered meanwhile.
func testFleetAheadBytes(t *testing.T, s queue.Store) {
	sh := asShared(s)
	// Each destination has jobs jobs; the first quick attempts of each are answered at once.
	const jobs, large, quick = 40, 200 << 10, 8
	release := make(chan struct{})
	var delivered sync.Map
	var mu sync.Mutex
	answered := map[string]int{}
	sender := senderFunc(func(ctx context.Context, j *queue.Job) queue.Result {
		mu.Lock()
		answered[j.URL]++
		fast := answered[j.URL] <= quick
		mu.Unlock()
		if !fast && !strings.Contains(j.URL, "//free.") {
			select {
			case <-release:
			case <-ctx.Done():
				return queue.Result{Err: ctx.Err()}
			}
		}
		if strings.Contains(j.URL, "//free.") {
			delivered.Store(j.ID, true)
		}
		return queue.Result{Status: 204}
	})
	opts := fleetOptions("a")
	opts.Workers, opts.PerHost, opts.AheadBytes = 6, 2, 1<<20
	bigs := jobsTo("big", "https://big.example/h", jobs)
	for _, j := range bigs {
		j.Files[0].Data = bytes.Repeat([]byte{'%'}, large)
	}
	enqueue(t, s, slices.Concat(bigs, jobsTo("small", "https://small.example/h", jobs), jobsTo("free", "https://free.example/h", jobs))...)
	d := queue.NewDispatcher(sh, sender, opts)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	held := func(prefix string) int {
		n := 0
		for id := range d.Leases() {
			if strings.HasPrefix(id, prefix) {
				n++
			}
		}
		return n
	}
	waitFor(t, "the free destination's jobs delivered while the others hang", func() bool {
		n := 0
		delivered.Range(func(k, _ any) bool { n++; return true })
		return n == jobs
	})
	// The quick attempts' outcomes are stored: the jobs still held are running or ahead.
	waitFor(t, "the quick attempts' outcomes stored", func() bool {
		return checkCountsQuiet(t, s)[queue.StateDelivered] == jobs+2*quick
	})
	// The small jobs of a destination whose attempts were quick are claimed deep (up to
	// 16×PerHost) as rounds come.
	waitFor(t, "small jobs claimed far ahead", func() bool { return held("small") >= 8*opts.PerHost })
	// 2×PerHost (running or ahead) plus what fits in AheadBytes; 16×PerHost without the bound.
	if n, most := held("big"), 2*opts.PerHost+int(opts.AheadBytes/large); n > most {
		t.Errorf("%d large jobs claimed, want at most %d (2×PerHost and %d bytes ahead)", n, most, opts.AheadBytes)
	}
	close(release)
	waitFor(t, "every job delivered", func() bool {
		return checkCountsQuiet(t, s)[queue.StateDelivered] == 3*jobs
	})
}

// A destination whose attempts are slow is not claimed far ahead: its backlog stays in the
// shared queue, and every process of the fleet works on it, each up to its own PerHost.
func testFleetSpreadsSlowDestination(t *testing.T, s queue.Store) {
	sh := asShared(s)
	var mu sync.Mutex
	by := map[string]int{}
	slow := func(name string) queue.Sender {
		return senderFunc(func(ctx context.Context, j *queue.Job) queue.Result {
			mu.Lock()
			by[name]++
			mu.Unlock()
			select {
			case <-time.After(40 * time.Millisecond):
				return queue.Result{Status: 204}
			case <-ctx.Done():
				return queue.Result{Err: ctx.Err()}
			}
		})
	}
	const jobs = 40
	enqueue(t, s, jobsTo("w", "https://slow.example/h", jobs)...)
	for _, name := range []string{"a", "b"} {
		d := queue.NewDispatcher(sh, slow(name), fleetOptions(name))
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		defer d.Stop()
	}
	waitFor(t, "every job delivered", func() bool {
		return checkCountsQuiet(t, s)[queue.StateDelivered] == jobs
	})
	mu.Lock()
	defer mu.Unlock()
	// Claimed 16×PerHost deep, the first to scan would take 32 of the 40 jobs.
	if by["a"] < jobs/4 || by["b"] < jobs/4 {
		t.Errorf("attempts: a %d, b %d; want each at least %d", by["a"], by["b"], jobs/4)
	}
}

// A process that stops hands its claims back: another process attempts those jobs at once,
// not when the claims would have expired.
func testFleetStopReleasesClaims(t *testing.T, s queue.Store) {
	sh := asShared(s)
	started := make(chan struct{}, 10)
	hang := senderFunc(func(ctx context.Context, j *queue.Job) queue.Result {
		started <- struct{}{}
		<-ctx.Done()
		return queue.Result{Err: ctx.Err()}
	})
	optsA := fleetOptions("a")
	optsA.Lease = time.Hour
	a := queue.NewDispatcher(sh, hang, optsA)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx queue.Tx) error {
		_, err := tx.Enqueue(newJob("y", "https://a.example/h", time.Now()))
		return err
	})
	<-started
	a.Stop()
	if j := head(t, s, "y"); j.Lease != "" || j.DueAt.After(time.Now()) || len(j.Attempts) != 0 {
		t.Fatalf("after a's stop: lease %q, due %s, %d attempts; want unclaimed, due, no attempt stored", j.Lease, j.DueAt, len(j.Attempts))
	}
	done := make(chan struct{})
	b := queue.NewDispatcher(sh, senderFunc(func(ctx context.Context, j *queue.Job) queue.Result {
		close(done)
		return queue.Result{Status: 204}
	}), fleetOptions("b"))
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("b did not attempt the job a handed back")
	}
}

// jobsTo returns n new jobs to url, due now, with IDs prefix00, prefix01 and so on.
func jobsTo(prefix, url string, n int) []*queue.Job {
	jobs := make([]*queue.Job, n)
	for i := range jobs {
		jobs[i] = newJob(fmt.Sprintf("%s%02d", prefix, i), url, time.Now())
	}
	return jobs
}

// senderFunc adapts a function to queue.Sender.
type senderFunc func(ctx context.Context, j *queue.Job) queue.Result

func (f senderFunc) Send(ctx context.Context, j *queue.Job) queue.Result { return f(ctx, j) }

// checkCountsQuiet returns the store's counts, failing the test on an error.
func checkCountsQuiet(t *testing.T, s queue.Store) map[string]int64 {
	t.Helper()
	var c map[string]int64
	view(t, s, func(tx queue.Tx) (err error) { c, err = tx.Counts(); return err })
	return c
}
