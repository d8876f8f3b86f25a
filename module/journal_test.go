package module

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/handler/extract"
	"github.com/faxhook/caddy-faxhook/queue"
)

// Entries written and never recorded (a crash) come back, in order, when the journal is opened
// again; a torn last frame is cut off, and the next entry goes after the good ones.
func TestJournalKeepsEntriesUntilRecordedAndCutsATornTail(t *testing.T) {
	dir := t.TempDir()
	j, entries, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("a new journal has %d entries", len(entries))
	}
	for _, id := range []int64{1, 2, 3} {
		if err := j.append(journalEntry{FaxIDs: []int64{id}, CallbackURLs: []string{"https://example.com/cb"}}); err != nil {
			t.Fatal(err)
		}
	}
	j.recorded() // one of three recorded: the file must keep all of them
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, journalName)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, '{', '"'}) // a frame cut short by a crash
	f.Close()

	j, entries, err = openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[0].FaxIDs[0] != 1 || entries[2].FaxIDs[0] != 3 {
		t.Fatalf("entries after reopening: %+v, want fax ids 1, 2, 3", entries)
	}
	if err := j.append(journalEntry{FaxIDs: []int64{4}}); err != nil {
		t.Fatal(err)
	}
	j.close()
	_, entries, err = openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 || entries[3].FaxIDs[0] != 4 {
		t.Fatalf("entries after a write behind the cut tail: %+v, want fax ids 1 to 4", entries)
	}
}

// A corrupt frame (bad checksum) ends the entries instead of feeding garbage to the tracker.
func TestJournalStopsAtACorruptFrame(t *testing.T) {
	dir := t.TempDir()
	j, _, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	j.append(journalEntry{FaxIDs: []int64{1}})
	j.append(journalEntry{FaxIDs: []int64{2}})
	j.close()
	path := filepath.Join(dir, journalName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-2] ^= 0xff // inside the second entry's payload
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, entries, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].FaxIDs[0] != 1 {
		t.Fatalf("entries: %+v, want only fax 1", entries)
	}
}

// Once everything in a grown journal is recorded it is emptied; an entry whose commit failed
// keeps the file for the next replay, even at a clean close.
func TestJournalEmptiesOnlyWhenEverythingWasRecorded(t *testing.T) {
	dir := t.TempDir()
	j, _, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := journalEntry{FaxIDs: []int64{123456789}, CallbackURLs: []string{"https://example.com/a/fairly/long/callback/path"}}
	n := 0
	for ; !j.emptied() || n == 0; n++ {
		if n > 100000 {
			t.Fatal("the journal never emptied")
		}
		if err := j.append(e); err != nil {
			t.Fatal(err)
		}
		j.recorded()
	}
	payload, _ := json.Marshal(e)
	if n*(8+len(payload)) < journalTruncateAt {
		t.Errorf("emptied after %d entries, before it reached %d bytes", n, journalTruncateAt)
	}
	j.append(e)
	j.failedToRecord()
	j.append(e)
	j.recorded()
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	_, entries, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d entries kept after a failed commit, want 2", len(entries))
	}
}

// A send that Caddy answered but did not record in the store before it died is recorded when
// the storage is opened again: the fax keeps its callback_url and is in the poller's work list.
// Phone numbers come back the same way.
func TestSendsLeftInTheJournalAreReplayedAtOpen(t *testing.T) {
	dir := t.TempDir()
	j, _, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	j.append(journalEntry{FaxIDs: []int64{77}, CallbackURLs: []string{"https://example.com/cb77"}})
	j.append(journalEntry{Numbers: []extract.Number{{PhoneNumber: "+15550109999", CallbackURL: "https://example.com/num", HasCallback: true}}})
	j.close()

	e, err := loadEngine(dir, true, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engines.Delete(dir) })
	var rec trackedFax
	var live, number bool
	var numURLs []string
	err = e.store.View(func(tx queue.Tx) error {
		v, err := tx.State(faxKey(77))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		_, err = tx.State(liveKey(77))
		live = err == nil
		v, err = tx.State(prefixNumber + "+15550109999")
		if number = err == nil; number {
			json.Unmarshal(v, &numURLs)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading the replayed fax: %v", err)
	}
	if len(rec.CallbackURLs) != 1 || rec.CallbackURLs[0] != "https://example.com/cb77" || !live {
		t.Errorf("replayed fax 77: callback %v, in the poller's list %v", rec.CallbackURLs, live)
	}
	if len(numURLs) != 1 || numURLs[0] != "https://example.com/num" {
		t.Errorf("replayed number: %v (found %v)", numURLs, number)
	}
	if !e.journal.emptied() {
		t.Error("the journal still holds the replayed entries")
	}
}

// Record returns before the store commit, yet a GET answered right after the send is recorded
// after it: the fax_completed job goes to the send's callback_url, not to the global sent_url.
func TestRecordKeepsTheSendAheadOfLaterObservations(t *testing.T) {
	e := startEngine(t, settings{schedule: queue.DefaultSchedule, sentURLs: []string{"https://example.com/global"}})
	for id := int64(1); id <= 50; id++ {
		send := &Observation{Faxes: []extract.Object{{Fax: obj(id, "queued", time.Time{}).Fax}}, CallbackURLs: []string{"https://example.com/own"}}
		if err := e.recordSync(send); err != nil {
			t.Fatal(err)
		}
		done := obj(id, "success", time.Now())
		if !e.submit(func() *Observation { return &Observation{Faxes: []extract.Object{done}} }) {
			t.Fatal("observation dropped")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		jobs := 0
		err := e.store.View(func(tx queue.Tx) error {
			return tx.Jobs(func(j *queue.Job) bool {
				jobs++
				if j.URL != "https://example.com/own" {
					t.Errorf("fax %d: job to %s, want the send's callback_url", j.FaxID, j.URL)
				}
				return true
			})
		})
		if err != nil && !errors.Is(err, queue.ErrClosed) {
			t.Fatal(err)
		}
		if jobs == 50 || time.Now().After(deadline) {
			if jobs != 50 {
				t.Fatalf("%d jobs, want 50", jobs)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
