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
// implementation; other engines can implement the same contract. Update runs fn in one atomic
// transaction (retrying it on a write conflict, so fn must be free of outside side effects).
type Store interface {
	Update(fn func(Tx) error) error
	View(fn func(Tx) error) error
	Close() error
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
	// DeleteJob removes a finished job and its index entries; removing a missing one is not an
	// error. Unfinished jobs cannot be deleted.
	DeleteJob(id string) error
	// Due returns up to limit pending jobs whose DueAt is not after now, earliest first.
	Due(now time.Time, limit int) ([]*Job, error)
	// NextDue returns the earliest DueAt of any pending job; ok is false when there is none.
	NextDue() (t time.Time, ok bool, err error)
	// Leased returns the IDs of jobs in state leased.
	Leased() ([]string, error)
	// Jobs calls fn for every job, in ID order, until fn returns false.
	Jobs(fn func(*Job) bool) error
	// Finished calls fn for the jobs in a final state (StateDelivered or StateDead) that finished
	// at or after since, oldest first, until fn returns false.
	Finished(state string, since time.Time, fn func(*Job) bool) error
	// States calls fn for every state record whose key starts with prefix, in key order, until fn
	// returns false.
	States(prefix string, fn func(key string, value []byte) bool) error
}
