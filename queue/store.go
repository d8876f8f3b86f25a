package queue

import (
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned when a state record or job does not exist.
var ErrNotFound = errors.New("not found")

// ErrClosed is returned by every operation on a store that was closed. Old Caddy handlers can
// outlive the configuration that opened the store; they get this error, never a panic.
var ErrClosed = errors.New("faxhook store is closed")

// ErrBadCursor is returned (wrapped) by Tx.List for a cursor it did not hand out.
var ErrBadCursor = errors.New("not a cursor of this listing")

// DefaultPageSize is the page size of Tx.List when ListQuery.Limit is not positive.
const DefaultPageSize = 100

// Store is the durable home of state records and delivery jobs. It only reads and writes: when
// to attempt which job is the Dispatcher's policy. Badger is the embedded implementation; every
// implementation passes the conformance suite in queue/storetest.
type Store interface {
	// Update runs fn in one atomic transaction (retrying it on a write conflict, so fn must be
	// free of outside side effects) and returns once the commit is as durable as the store is
	// configured to make it (with sync_writes, on disk). When fn returns an error, nothing it
	// wrote takes effect and Update returns that error.
	Update(fn func(Tx) error) error
	// UpdateLazy is Update without waiting for the disk: the commit survives a process crash,
	// not always a power loss. The dispatcher stores attempt outcomes with it; losing one to a
	// power loss makes the job due again, and at-least-once delivery allows the repeated
	// attempt.
	UpdateLazy(fn func(Tx) error) error
	// View runs fn in a read-only transaction that sees one consistent snapshot.
	View(fn func(Tx) error) error
	// Close releases the store; every operation after it fails with ErrClosed.
	Close() error
}

// ListQuery selects one page of Tx.List.
type ListQuery struct {
	// State selects the jobs and their order: "" lists every job by ID; StatePending by
	// destination (Destination of the URL), then due time; StateWaiting by chain, then the order
	// they were enqueued in; StateDelivered and StateDead by finish time, then ID.
	State string
	// Since starts a listing of StateDelivered or StateDead at this finish time.
	Since time.Time
	// After is the Next of the previous page; empty for the first page.
	After string
	// Limit is the most jobs one page holds; DefaultPageSize when not positive.
	Limit int
}

// Page is one page of Tx.List.
type Page struct {
	// Jobs are the listed jobs without their bodies (as Tx.JobHead returns them).
	Jobs []*Job
	// Next is the cursor of the next page (ListQuery.After): an opaque string, empty when no
	// job follows this page.
	Next string
}

// Tx is one transaction over a Store.
//
// Job states as stored are waiting, pending, delivered and dead. Leases are not stored: the
// Dispatcher holds them in memory, and a leased job stays pending in the store until its
// outcome is written (see Dispatcher.Leases).
type Tx interface {
	// State returns the state record stored under key, or ErrNotFound.
	State(key string) ([]byte, error)
	// PutState stores a state record.
	PutState(key string, value []byte) error
	// DeleteState removes a state record; removing a missing one is not an error.
	DeleteState(key string) error
	// States calls fn for every state record whose key starts with prefix, in key order (bytes),
	// until fn returns false.
	States(prefix string, fn func(key string, value []byte) bool) error

	// Enqueue adds a job due at job.DueAt: pending, or waiting when an earlier job of its chain
	// is unfinished (neither delivered nor dead). It sets job.State to the state stored. It
	// reports false, and changes nothing, when a job with that ID already exists: enqueueing is
	// idempotent.
	Enqueue(job *Job) (bool, error)
	// Job returns the job with that ID, or ErrNotFound.
	Job(id string) (*Job, error)
	// JobHead returns the job with that ID without its body: its Payload is
	// left empty. It reads less than Job; use it, with PutJobHead, where the body is not needed.
	// ErrNotFound if there is no such job.
	JobHead(id string) (*Job, error)
	// PutJob stores a changed job: its state (pending, delivered or dead), due time, finish
	// time, attempt log and body. Its ID and Chain cannot change. When a job of a chain
	// finishes (delivered or dead), the next waiting job of the chain becomes pending, due at
	// the finished job's DueAt. The job must exist (else ErrNotFound, wrapped).
	PutJob(job *Job) error
	// PutJobHead is PutJob except for the body (the Payload), which stays as
	// stored whatever job holds: it stores less, and is for changes of state, due time and
	// attempt log.
	PutJobHead(job *Job) error
	// DeleteJob removes a finished job; removing a missing one is not an error. Unfinished jobs
	// cannot be deleted.
	DeleteJob(id string) error

	// Destinations calls fn, in no particular order, for every destination (Destination of a
	// job's URL) with a pending job due by now, with the earliest DueAt of its jobs, until fn
	// returns false. It returns a time before which no pending job of the other destinations is
	// due: their earliest DueAt, or an earlier time after now (a store may answer them from
	// what it keeps in memory); zero when they have no pending job, or when fn stopped the
	// listing. It reads at most once per destination, whatever the backlog.
	Destinations(now time.Time, fn func(dest string, oldest time.Time) bool) (next time.Time, err error)
	// PendingJobs calls fn for the pending jobs of one destination, earliest DueAt first (then
	// by ID), with their ID and DueAt, until fn returns false. It loads no job.
	PendingJobs(dest string, fn func(id string, dueAt time.Time) bool) error
	// Due returns up to limit pending jobs, of any destination, whose DueAt is not after now,
	// earliest first. It loads at most limit jobs, whatever the backlog.
	Due(now time.Time, limit int) ([]*Job, error)
	// NextDue returns the earliest DueAt of any pending job; ok is false when there is none.
	NextDue() (t time.Time, ok bool, err error)

	// Counts returns the number of jobs in each stored state (waiting, pending, delivered,
	// dead; every one present, zero included), this transaction's own changes included. The
	// counts are kept up to date on every change of state, so Counts reads no job.
	Counts() (map[string]int64, error)
	// List returns one page of jobs of one state (or all), in the order ListQuery.State
	// describes; a page costs reads in proportion to its size.
	List(q ListQuery) (Page, error)
	// Jobs calls fn for every job, in ID order, until fn returns false.
	Jobs(fn func(*Job) bool) error
	// JobHeads is Jobs without the jobs' bodies (their Payload is empty).
	JobHeads(fn func(*Job) bool) error
	// Finished calls fn for the jobs in a final state (StateDelivered or StateDead) that finished
	// at or after since, oldest first, until fn returns false.
	Finished(state string, since time.Time, fn func(*Job) bool) error
	// FinishedHeads is Finished without the jobs' bodies, like JobHeads.
	FinishedHeads(state string, since time.Time, fn func(*Job) bool) error
}

// Shared is implemented by a Store that several processes use at once (PostgreSQL, for a
// fleet of Caddy instances). Over a Shared store the Dispatcher claims each job in the store
// before attempting it (see Job.Lease), instead of holding its leases in memory only, so that
// no two processes attempt one job at once and a dead process's claims expire.
type Shared interface {
	Store
	// Wakeups delivers a value after another process committed a transaction that made a job
	// pending, so that a free dispatcher attempts it at once. Notifications can be lost (while
	// the store reconnects, say): the dispatcher also looks for due jobs every
	// Options.FleetScan.
	Wakeups() <-chan struct{}
}

// Prefetcher is implemented by the transactions of a store that pays a round trip per read
// (PostgreSQL): Prefetch reads the heads of several jobs at once, so that the JobHead calls
// for them that follow cost nothing more. The dispatcher prefetches the jobs whose attempt
// outcomes a round stores.
type Prefetcher interface {
	// Prefetch reads the heads of the jobs ids (missing ones are left out: JobHead then
	// reports ErrNotFound).
	Prefetch(ids []string) error
}

// Claim asks ClaimDue for up to Limit due jobs of one destination, claimed with Token.
type Claim struct {
	// Dest is the destination (see Destination).
	Dest string
	// Limit is the most jobs to claim.
	Limit int
	// Token goes into each claimed job's Lease.
	Token string
}

// Claimer is implemented by the transactions of a Shared store that can claim due jobs in one
// round trip for several destinations, passing over the jobs another process is claiming at
// that moment (PostgreSQL's FOR UPDATE SKIP LOCKED). Without it, ClaimDue claims job by job
// through PendingJobs, Job and PutJobHead.
type Claimer interface {
	// ClaimDue claims, for each claim, up to Limit pending jobs of Dest that are due by now and
	// not in skip, earliest DueAt first (then by ID): each gets Lease = Token and DueAt =
	// until, and is returned with its body, in the claim's slot of the result. It passes over
	// the jobs other transactions hold.
	ClaimDue(claims []Claim, now time.Time, skip map[string]bool, until time.Time) ([][]*Job, error)
}

// ClaimDue claims due pending jobs in tx, as Claimer.ClaimDue does: with tx's own ClaimDue if
// it has one, else by reading each due job and writing its head back claimed. A job whose
// DueAt is after now — claimed by another process, its claim not yet expired, or simply not
// due — is not claimed.
func ClaimDue(tx Tx, claims []Claim, now time.Time, skip map[string]bool, until time.Time) ([][]*Job, error) {
	if c, ok := tx.(Claimer); ok {
		return c.ClaimDue(claims, now, skip, until)
	}
	out := make([][]*Job, len(claims))
	for i, c := range claims {
		jobs, err := claimOne(tx, c, now, skip, until)
		if err != nil {
			return nil, err
		}
		out[i] = jobs
	}
	return out, nil
}

// claimOne is ClaimDue for one claim, through the Tx interface.
func claimOne(tx Tx, c Claim, now time.Time, skip map[string]bool, until time.Time) ([]*Job, error) {
	var ids []string
	err := tx.PendingJobs(c.Dest, func(id string, dueAt time.Time) bool {
		if dueAt.After(now) {
			return false
		}
		if !skip[id] {
			ids = append(ids, id)
		}
		return len(ids) < c.Limit
	})
	if err != nil {
		return nil, err
	}
	var jobs []*Job
	for _, id := range ids {
		j, err := tx.Job(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("loading due job %s to claim it: %w", id, err)
		}
		if j.State != StatePending || j.DueAt.After(now) {
			continue // claimed meanwhile by another process
		}
		j.Lease, j.DueAt = c.Token, until
		if err := tx.PutJobHead(j); err != nil {
			return nil, fmt.Errorf("claiming job %s: %w", id, err)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// BatchEnqueuer is implemented by the transactions of a store that pays a round trip per
// answered call (PostgreSQL): EnqueueAll enqueues several jobs and answers for all of them at
// once.
type BatchEnqueuer interface {
	// EnqueueAll is Tx.Enqueue for each job, in order; ok[i] reports whether jobs[i] was new.
	EnqueueAll(jobs []*Job) (ok []bool, err error)
}

// EnqueueAll enqueues jobs in tx, reporting for each whether it was new, as Tx.Enqueue does one
// by one: with tx's own EnqueueAll if it has one (one round trip for all of them on
// PostgreSQL), else with Enqueue for each.
func EnqueueAll(tx Tx, jobs []*Job) ([]bool, error) {
	if b, ok := tx.(BatchEnqueuer); ok {
		return b.EnqueueAll(jobs)
	}
	ok := make([]bool, len(jobs))
	for i, j := range jobs {
		var err error
		if ok[i], err = tx.Enqueue(j); err != nil {
			return nil, err
		}
	}
	return ok, nil
}
