package queue_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/faxhook/caddy-faxhook/queue"
)

// prepSender records the payloads it is handed and answers as scripted.
type prepSender struct {
	mu     sync.Mutex
	sent   []queue.Payload
	answer func(n int) queue.Result
}

func (s *prepSender) Send(_ context.Context, j *queue.Job) queue.Result {
	s.mu.Lock()
	s.sent = append(s.sent, j.Payload)
	n := len(s.sent)
	s.mu.Unlock()
	return s.answer(n)
}

// prepJob reads job id with its body.
func prepJob(t *testing.T, st queue.Store, id string) *queue.Job {
	t.Helper()
	var j *queue.Job
	if err := st.View(func(tx queue.Tx) (err error) { j, err = tx.Job(id); return }); err != nil {
		t.Fatal(err)
	}
	return j
}

// prepWait polls the store (real time) until job id has n attempts.
func prepWait(t *testing.T, st queue.Store, id string, n int) *queue.Job {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if j := prepJob(t, st, id); len(j.Attempts) >= n {
			return j
		}
	}
	t.Fatalf("job %s never had %d attempts", id, n)
	return nil
}

// A job whose payload needs preparing is prepared by a worker before an attempt; a failed
// preparation fails the attempt and stores nothing; a successful one is stored with the
// attempt's outcome, so that later attempts send the same bytes without preparing again.
func TestPrepareStoredWithOutcome(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := queue.NewFakeClock(t0)
	st, err := queue.OpenBadger(t.TempDir(), queue.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var mu sync.Mutex
	var prepared []string
	prepare := func(_ context.Context, j *queue.Job) (queue.Payload, error) {
		mu.Lock()
		defer mu.Unlock()
		prepared = append(prepared, j.Prepare)
		if len(prepared) == 1 {
			return queue.Payload{}, errors.New("fetching the file: upstream unavailable")
		}
		return queue.Payload{Fields: j.Fields, Files: []queue.File{{Name: "file", Data: []byte("%PDF")}},
			Mail: &queue.Mail{Subject: "s", Text: "t"}, Prepare: "left set by the preparer"}, nil
	}
	sender := &prepSender{answer: func(n int) queue.Result {
		if n == 1 {
			return queue.Result{Status: 500, Err: errors.New("status 500")}
		}
		return queue.Result{Status: 200}
	}}
	var heads []*queue.Job
	d := queue.NewDispatcher(st, sender, queue.Options{Clock: clock, Prepare: prepare,
		OnOutcome: func(j *queue.Job, _ queue.Result) { mu.Lock(); heads = append(heads, j); mu.Unlock() }})
	fields := []queue.Field{{Name: "a", Value: "1"}}
	err = d.Update(func(tx queue.Tx) error {
		_, err := tx.Enqueue(&queue.Job{ID: "p1", EventID: "e1", URL: "http://example.invalid/hook", CreatedAt: t0, DueAt: t0,
			Payload: queue.Payload{Fields: fields, Prepare: "ref-1"}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()

	// 1: the preparation fails; nothing is sent, nothing stored but the attempt.
	j := prepWait(t, st, "p1", 1)
	if j.Attempts[0].Error != "fetching the file: upstream unavailable" || j.State != queue.StatePending ||
		j.Prepare != "ref-1" || j.Files != nil || j.Mail != nil {
		t.Fatalf("after a failed preparation: %+v", j)
	}
	// 2: prepared and sent, the receiver fails; the payload is stored with the outcome.
	clock.Advance(5 * time.Minute)
	j = prepWait(t, st, "p1", 2)
	if j.Prepare != "" || len(j.Files) != 1 || string(j.Files[0].Data) != "%PDF" || j.Mail == nil || j.Mail.Text != "t" ||
		len(j.Fields) != 1 || j.State != queue.StatePending || j.Attempts[1].Status != 500 {
		t.Fatalf("after the prepared attempt: %+v", j)
	}
	// 3: sent as stored, without preparing again.
	clock.Advance(10 * time.Minute)
	j = prepWait(t, st, "p1", 3)
	if j.State != queue.StateDelivered {
		t.Fatalf("third attempt: %+v", j)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(prepared) != 2 || prepared[0] != "ref-1" || prepared[1] != "ref-1" {
		t.Errorf("prepared %q, want ref-1 twice", prepared)
	}
	sender.mu.Lock()
	defer sender.mu.Unlock()
	if len(sender.sent) != 2 || sender.sent[0].Prepare != "" || len(sender.sent[1].Files) != 1 ||
		string(sender.sent[0].Files[0].Data) != string(sender.sent[1].Files[0].Data) {
		t.Errorf("sent %+v", sender.sent)
	}
	for _, h := range heads {
		if h.Fields != nil || h.Files != nil || h.Mail != nil || h.Prepare != "" {
			t.Errorf("OnOutcome got a body: %+v", h)
		}
	}
}

// Without Options.Prepare, a job is sent as it is.
func TestNoPreparerSendsAsIs(t *testing.T) {
	st, err := queue.OpenBadger(t.TempDir(), queue.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sender := &prepSender{answer: func(int) queue.Result { return queue.Result{Status: 200} }}
	d := queue.NewDispatcher(st, sender, queue.Options{})
	now := time.Now()
	if err := d.Update(func(tx queue.Tx) error {
		_, err := tx.Enqueue(&queue.Job{ID: "p2", URL: "http://example.invalid/", DueAt: now, Payload: queue.Payload{Prepare: "ref"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	if j := prepWait(t, st, "p2", 1); j.State != queue.StateDelivered || j.Prepare != "ref" {
		t.Fatalf("job %+v", j)
	}
}

// The dispatcher's log entries describe a job by its metadata, or by what Options.LogFields
// makes of it.
func TestOutcomeLogFields(t *testing.T) {
	for _, custom := range []bool{false, true} {
		st, err := queue.OpenBadger(t.TempDir(), queue.BadgerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		core, logs := observer.New(zap.InfoLevel)
		opts := queue.Options{Logger: zap.New(core)}
		if custom {
			opts.LogFields = func(j *queue.Job) []zap.Field { return []zap.Field{zap.Int("labels", len(j.Meta))} }
		}
		d := queue.NewDispatcher(st, &prepSender{answer: func(int) queue.Result { return queue.Result{Status: 200} }}, opts)
		now := time.Now()
		if err := d.Update(func(tx queue.Tx) error {
			_, err := tx.Enqueue(&queue.Job{ID: "l1", URL: "http://u:secret@example.invalid/", DueAt: now,
				Meta: queue.Labels{{Name: "fax_id", Value: "12"}, {Name: "event_type", Value: "fax_completed"}}})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		prepWait(t, st, "l1", 1)
		d.Stop()
		st.Close()
		entries := logs.FilterMessage("webhook delivered").All()
		if len(entries) != 1 {
			t.Fatalf("custom %v: %d delivered entries", custom, len(entries))
		}
		got := entries[0].ContextMap()
		if custom && (got["labels"] != int64(2) || got["fax_id"] != nil) ||
			!custom && (got["fax_id"] != "12" || got["event_type"] != "fax_completed") ||
			got["url"] != "http://REDACTED@example.invalid/" {
			t.Errorf("custom %v: fields %v", custom, got)
		}
	}
}
