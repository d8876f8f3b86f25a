// Package queue is faxhook's durable delivery engine: webhook jobs stored in Badger, scheduled by
// due time, leased by a single dispatcher, retried on Phaxio's ladder and declared dead after the
// last retry. It is a plain Go library and knows nothing about Caddy or faxes: a job carries a
// payload rendered by the application and metadata the queue does not interpret.
package queue

import (
	"context"
	"errors"
	"time"

	"github.com/faxhook/caddy-faxhook/queue/ssrf"
)

// Field is one non-file form field of a webhook, in the order it is written to the body.
type Field struct {
	// Name is the form field name, e.g. "fax" or "event_type".
	Name string `json:"name"`
	// Value is the field's value, byte for byte as transmitted and signed.
	Value string `json:"value"`
}

// File is one file part of a webhook, or an attachment of a mail.
type File struct {
	// Name is the form part name; it is what the signature covers.
	Name string `json:"name"`
	// Filename is the file name given in the part's Content-Disposition.
	Filename string `json:"filename"`
	// ContentType is the part's Content-Type, e.g. "application/pdf".
	ContentType string `json:"content_type"`
	// Data holds the file's bytes, sent identically on every attempt.
	Data []byte `json:"data"`
}

// Job states.
const (
	StateWaiting   = "waiting"   // behind an earlier unfinished job of its chain
	StatePending   = "pending"   // waiting for its due time
	StateLeased    = "leased"    // handed to a sender; an attempt is under way (shown, not stored: see Dispatcher)
	StateDelivered = "delivered" // a receiver accepted it
	StateDead      = "dead"      // every attempt failed, or the URL can never work
)

// Attempt records one delivery attempt.
type Attempt struct {
	// At is when the attempt started.
	At time.Time `json:"at"`
	// Duration is how long the attempt took.
	Duration time.Duration `json:"duration"`
	// Status is the HTTP status code (or SMTP reply code) received, 0 if none.
	Status int `json:"status,omitempty"`
	// Error describes why the attempt failed, empty on success.
	Error string `json:"error,omitempty"`
	// Body is the first bytes of the response body.
	Body string `json:"body,omitempty"`
}

// Finished reports whether a state is final (delivered or dead).
func Finished(state string) bool { return state == StateDelivered || state == StateDead }

// Mail is a rendered e-mail message: what a mailto: job sends. The sender adds the envelope
// (From, the recipients of the URL), the headers that identify the job and the attempt, and the
// job's Files as attachments.
type Mail struct {
	// Subject is the message's subject; a subject given in the mailto: URL replaces it.
	Subject string `json:"subject"`
	// Text is the plain-text body.
	Text string `json:"text"`
	// HTML is the HTML alternative of Text; empty for a plain-text message.
	HTML string `json:"html,omitempty"`
}

// Payload is what a job sends, rendered by the application: form fields and files for an http
// or https URL, a mail message (and files as attachments) for a mailto: URL. The queue stores
// it as the job's body and sends it unchanged on every attempt.
type Payload struct {
	// Fields are the form fields, in body order.
	Fields []Field `json:"fields"`
	// Files are the file parts (attachments of a mail).
	Files []File `json:"files,omitempty"`
	// Mail is the rendered message of a mailto: job; nil for other jobs.
	Mail *Mail `json:"mail,omitempty"`
	// Prepare, when set and Files is empty, is an opaque reference (e.g. a file to fetch) that
	// Options.Prepare turns into the complete payload once, before the job's first attempt; the
	// dispatcher stores the result with the attempt's outcome, so that every later attempt sends
	// the same bytes.
	Prepare string `json:"prepare,omitempty"`
}

// Label is one item of a job's metadata.
type Label struct {
	// Name names the item, e.g. "event_type".
	Name string `json:"name"`
	// Value is the item's value.
	Value string `json:"value"`
}

// Labels is a job's metadata: name/value pairs the application sets for listings, filters and
// logs, which the queue stores with the job's head and never interprets.
type Labels []Label

// Get returns the value of the first label named name, "" if there is none.
func (l Labels) Get(name string) string {
	for _, x := range l {
		if x.Name == name {
			return x.Value
		}
	}
	return ""
}

// Job is one webhook delivery: one payload to one URL.
type Job struct {
	// ID is stable for the event and URL; enqueueing an existing ID is a no-op.
	ID string `json:"id"`
	// EventID identifies the event the job delivers; several URLs share it. Senders pass it on
	// (a header) so that receivers can recognise a repeated delivery.
	EventID string `json:"event_id"`
	// Meta is the application's metadata of the job, e.g. what its event is about. It is stored
	// with the job's head, so listings read it without loading the body.
	Meta Labels `json:"meta,omitempty"`
	// URL is the webhook URL exactly as configured or submitted (http, https or mailto).
	URL string `json:"url"`
	// Payload is the job's body: what is sent.
	Payload
	// Chain orders jobs: within one chain (one fax to one URL) a job is attempted only after the
	// jobs enqueued before it were delivered or died. Empty: no ordering.
	Chain string `json:"chain,omitempty"`
	// State is one of the State constants.
	State string `json:"state"`
	// FinishedAt is when the job was delivered or died.
	FinishedAt time.Time `json:"finished_at,omitempty"`
	// CreatedAt is when the job was enqueued.
	CreatedAt time.Time `json:"created_at"`
	// DueAt is when the next attempt is due (pending), or the lease ends (leased).
	DueAt time.Time `json:"due_at"`
	// Attempts is the attempt log, oldest first.
	Attempts []Attempt `json:"attempts,omitempty"`
	// LadderBase is how many attempts were made before the last replay; the retry ladder counts
	// from there.
	LadderBase int `json:"ladder_base,omitempty"`
	// ReplayedAt lists when an operator replayed the job.
	ReplayedAt []time.Time `json:"replayed_at,omitempty"`
	// Lease is the claim token of the dispatcher attempting the job, in a store that several
	// processes share (a fleet): a claim sets it and moves DueAt to the end of the lease, so
	// the other processes see the job as due again only once the lease has expired, and an
	// outcome is stored only while the token is still the job's. Empty when unclaimed, and
	// always in a store of one process, whose dispatcher holds its leases in memory.
	Lease string `json:"lease,omitempty"`

	// chainFlags is the store's bookkeeping of the job's place in its chain (chainLinked,
	// chainWaiter), kept in its head record.
	chainFlags uint8
}

// NeedsPrepare reports whether the job's payload still has to be prepared (Payload.Prepare)
// before an attempt.
func (j *Job) NeedsPrepare() bool { return j.Prepare != "" && len(j.Files) == 0 }

// Result is what a sender reports about one attempt.
type Result struct {
	// Status is the HTTP status (or SMTP reply code), 0 when none was received.
	Status int
	// Err is nil when the receiver accepted the webhook.
	Err error
	// Permanent marks a failure that no retry can fix (malformed or forbidden URL).
	Permanent bool
	// Body is the beginning of the response body, for the attempt log.
	Body string
	// RetryAfter is a delay the receiver asked for (429/503 Retry-After), 0 if none.
	RetryAfter time.Duration
}

// DeadReason says why a job whose last attempt had the Result res died: a destination the SSRF
// guard refused (ssrf.ErrBlocked), another permanent failure (a URL that can never work, an
// address the mail server rejects), a job whose destination was down when its retry ladder's
// time ran out (ErrLadderOver), or a failure on the last step of the retry ladder. It is the
// end of the dispatcher's "webhook dead: …" log entry.
func DeadReason(res Result) string {
	switch {
	case errors.Is(res.Err, ErrLadderOver):
		return "destination down until the retry ladder's time ran out"
	case errors.Is(res.Err, ssrf.ErrBlocked):
		return "destination refused by the SSRF guard (permanent)"
	case res.Permanent:
		return "permanent failure, not retried"
	}
	return "no more retries"
}

// Sender delivers one job once. It must be safe for concurrent use and must return when ctx ends.
type Sender interface {
	Send(ctx context.Context, job *Job) Result
}

// Clock tells the time and waits; tests inject a virtual clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// DefaultSchedule is Phaxio's retry ladder: the delay before retry n (16 retries, 17 attempts).
var DefaultSchedule = []time.Duration{
	5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute,
	6 * time.Hour, 6 * time.Hour, 6 * time.Hour, 6 * time.Hour,
	6 * time.Hour, 6 * time.Hour, 6 * time.Hour, 6 * time.Hour,
	6 * time.Hour, 6 * time.Hour, 6 * time.Hour, 6 * time.Hour,
}
