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
