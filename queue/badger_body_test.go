package queue

import (
	"bytes"
	"testing"
	"time"
)

// A job's file data outlives the transaction that read it and the store: a large body lives in
// Badger's value log, whose files are memory-mapped and unmapped at Close, so the data Job
// returns must not point into them.
func TestLargeBodyOutlivesTheStore(t *testing.T) {
	b, err := OpenBadger(t.TempDir(), BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pdf := bytes.Repeat([]byte("%PDF-1.4 large fax page "), 8<<10) // 192 KiB: in the value log
	job := &Job{ID: "big", URL: "https://a.example/hook", DueAt: time.Now(),
		Payload: Payload{Files: []File{{Name: "file", Filename: "fax.pdf", ContentType: "application/pdf", Data: pdf}}}}
	update(t, b, func(tx Tx) error { _, err := tx.Enqueue(job); return err })
	var got []*Job
	err = b.View(func(tx Tx) error {
		j, err := tx.Job("big")
		got = append(got, j)
		if err != nil {
			return err
		}
		return tx.Jobs(func(j *Job) bool { got = append(got, j); return true })
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, j := range got {
		if len(j.Files) != 1 || !bytes.Equal(j.Files[0].Data, pdf) {
			t.Fatalf("the file of job %s changed after Close", j.ID)
		}
	}
}

// A small body is kept in its job's head, a large one in a record of its own; PutJob moves the
// body between the two as its size changes, PutJobHead keeps it where and as it is, a head
// rewritten for the chain's bookkeeping keeps it too, and DeleteJob leaves no body record.
func TestBodyInlineOrApart(t *testing.T) {
	b := openTestStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	small := Payload{Fields: []Field{{Name: "fax", Value: `{"id":1}`}}, Prepare: "faxes/1/file"}
	large := Payload{Fields: small.Fields, Files: []File{{Name: "file", Filename: "1.pdf", ContentType: "application/pdf",
		Data: bytes.Repeat([]byte("%PDF"), inlineBodyMax)}}}
	// b waits behind a, enqueued in the same transaction: marking a as its chain's waiter
	// rewrites a's head, with the body a was enqueued with.
	update(t, b, func(tx Tx) error {
		for _, id := range []string{"a", "b"} {
			if _, err := tx.Enqueue(&Job{ID: id, URL: "https://a.example/hook", Chain: "C", DueAt: t0, Payload: small}); err != nil {
				return err
			}
		}
		return nil
	})
	body := func(id string) Payload {
		t.Helper()
		var p Payload
		err := b.View(func(tx Tx) error {
			j, err := tx.Job(id)
			if err == nil {
				p = j.Payload
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(step string, wantApart int, want Payload) {
		t.Helper()
		if n := countKeys(t, b, prefixBody); n != wantApart {
			t.Errorf("%s: %d body records, want %d", step, n, wantApart)
		}
		if got := body("a"); asJSON(t, &Job{Payload: got}) != asJSON(t, &Job{Payload: want}) {
			t.Errorf("%s: body of a: %d fields, %d files, prepare %q", step, len(got.Fields), len(got.Files), got.Prepare)
		}
	}
	check("enqueued", 0, small)
	if got := body("b"); got.Prepare != small.Prepare {
		t.Errorf("body of b: %+v", got)
	}
	put := func(p Payload, head bool) {
		t.Helper()
		update(t, b, func(tx Tx) error {
			j, err := tx.JobHead("a")
			if err != nil {
				return err
			}
			j.Payload, j.Attempts = p, append(j.Attempts, Attempt{At: t0, Status: 500})
			if head {
				return tx.PutJobHead(j)
			}
			return tx.PutJob(j)
		})
	}
	put(large, true)
	check("PutJobHead of an inline body", 0, small)
	put(large, false)
	check("PutJob of a large body", 1, large)
	put(small, true)
	check("PutJobHead of a body apart", 1, large)
	put(small, false)
	check("PutJob of a small body", 0, small)
	put(large, false)
	finish(t, b, "a", t0.Add(time.Minute))
	check("finished", 1, large)
	if got := states(t, b, "a", "b"); got[1] != StatePending {
		t.Errorf("b is %s after a finished, want pending", got[1])
	}
	update(t, b, func(tx Tx) error { return tx.DeleteJob("a") })
	if n := countKeys(t, b, prefixBody); n != 0 {
		t.Errorf("%d body records after DeleteJob, want 0", n)
	}
}
