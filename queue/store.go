package queue

import (
	"errors"
	"time"
)

// ErrNotFound is returned when a state record or job does not exist.
var ErrNotFound = errors.New("not found")

// ErrClosed is returned by every operation on a store that was closed. Old Caddy handlers can
// outlive the configuration that opened the store; they get this error, never a panic.
var ErrClosed = errors.New("faxhook store is closed")

// Store is the durable home of tracker state and webhook jobs. Badger is the embedded
// implementation; other engines can implement the same contract.
type Store interface {
	// Update runs fn in one atomic transaction (retrying it on a write conflict, so fn must be
	// free of outside side effects) and returns once the commit is as durable as the store is
	// configured to make it (with sync_writes, on disk).
	Update(fn func(Tx) error) error
	// UpdateLazy is Update without waiting for the disk: the commit survives a process crash,
	// not always a power loss. The dispatcher stores leases and attempt outcomes with it;
	// losing one to a power loss makes the job due again, and at-least-once delivery allows the
	// repeated attempt.
	UpdateLazy(fn func(Tx) error) error
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	Close() error
}

// ScanResult tells the caller of Tx.ScanDue when to scan again.
type ScanResult struct {
	// More is true when the scan stopped before it had seen every due job, because take returned
	// false or the store's bound on the work of one scan was reached: scan again when there is
	// capacity.
	More bool
	// Next is the earliest DueAt of the pending jobs not yet due, zero when there is none or when
	// More is true.
	Next time.Time
}

// Tx is one transaction over a Store.
type Tx interface {
	// State returns the state record stored under key, or ErrNotFound.
	State(key string) ([]byte, error)
	// PutState stores a state record.
	PutState(key string, value []byte) error
	// DeleteState removes a state record; removing a missing one is not an error.
	DeleteState(key string) error
	// Enqueue adds a job due at job.DueAt: pending, or waiting when an earlier job of its chain
	// is unfinished. It reports false, and changes nothing, when a job with that ID already
	// exists: enqueueing is idempotent.
	Enqueue(job *Job) (bool, error)
	// Job returns the job with that ID, or ErrNotFound.
	Job(id string) (*Job, error)
	// PutJob stores job, moving it in the indexes from its stored state to its new one. When a job
	// of a chain finishes (delivered or dead), the next waiting job of the chain becomes pending,
	// due at the finished job's DueAt.
	PutJob(job *Job) error
	// JobHead returns the job with that ID without its body: Fields, Files and FetchFile are
	// left empty. It reads less than Job; use it, with PutJobHead, where the body is not needed.
	// ErrNotFound if there is no such job.
	JobHead(id string) (*Job, error)
	// PutJobHead stores job like PutJob, except for its body (Fields, Files and FetchFile), which
	// stays as stored whatever job holds: it stores less than PutJob, and is for changes of
	// state, due time and attempt log. The job must exist (else ErrNotFound, wrapped).
	PutJobHead(job *Job) error
	// DeleteJob removes a finished job and its index entries; removing a missing one is not an
	// error. Unfinished jobs cannot be deleted.
	DeleteJob(id string) error
	// Due returns up to limit pending jobs whose DueAt is not after now, earliest first. It loads
	// at most limit jobs, whatever the backlog.
	Due(now time.Time, limit int) ([]*Job, error)
	// ScanDue offers take the pending jobs whose DueAt is not after now, earliest first, as job ID
	// and Destination, without loading them, until take returns false. A job whose destination
	// busy reports true is passed over and stays pending; in a read-write transaction the store
	// may set it aside so that later scans pass over it at no cost, and offers it again, before
	// newer jobs, once busy reports false for its destination. A job that skip reports (the
	// dispatcher's jobs under way, leased in memory) is passed over as if it were not there, and
	// later scans may start past it: it is offered again only once it was written (PutJob,
	// PutJobHead) or the store reopened. skip and busy may be nil. The store bounds the work of
	// one scan; ScanResult says whether to scan again at once or when.
	ScanDue(now time.Time, skip func(id string) bool, busy func(dest string) bool, take func(id, dest string) bool) (ScanResult, error)
	// NextDue returns the earliest DueAt of any pending job; ok is false when there is none.
	NextDue() (t time.Time, ok bool, err error)
	// Leased returns the IDs of jobs stored in state leased: older versions of the dispatcher
	// stored leases; this one holds them in memory (Dispatcher.Leases).
	Leased() ([]string, error)
	// Jobs calls fn for every job, in ID order, until fn returns false.
	Jobs(fn func(*Job) bool) error
	// JobHeads is Jobs without the jobs' bodies (Fields, Files and FetchFile are empty): one
	// read per job, for callers that need states, times and attempts.
	JobHeads(fn func(*Job) bool) error
	// Finished calls fn for the jobs in a final state (StateDelivered or StateDead) that finished
	// at or after since, oldest first, until fn returns false.
	Finished(state string, since time.Time, fn func(*Job) bool) error
	// FinishedHeads is Finished without the jobs' bodies, like JobHeads.
	FinishedHeads(state string, since time.Time, fn func(*Job) bool) error
	// States calls fn for every state record whose key starts with prefix, in key order, until fn
	// returns false.
	States(prefix string, fn func(key string, value []byte) bool) error
}
