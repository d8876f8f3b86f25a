package module

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/queue"
)

// segmentFiles lists the journal's files in dir.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, journalPrefix+"*"+journalSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// Entries written and never recorded (a crash) come back, in order, when the journal is opened
// again, until a replay resets it; a torn last frame ends them.
func TestJournalKeepsEntriesUntilRecordedAndStopsAtATornTail(t *testing.T) {
	dir := t.TempDir()
	j, entries, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("a new journal has %d entries", len(entries))
	}
	var segs []*segment
	for _, id := range []int64{1, 2, 3} {
		sg, err := j.append(journalEntry{FaxIDs: []int64{id}, CallbackURLs: []string{"https://example.com/cb"}})
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, sg)
	}
	j.recorded(segs[0]) // one of three recorded: the file must keep all of them
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	files := segmentFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("journal files after close: %v", files)
	}
	f, err := os.OpenFile(files[0], os.O_APPEND|os.O_WRONLY, 0)
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
	sg, err := j.append(journalEntry{FaxIDs: []int64{4}})
	if err != nil {
		t.Fatal(err)
	}
	_ = sg // not recorded: a crash
	j.close()
	_, entries, err = openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 || entries[3].FaxIDs[0] != 4 {
		t.Fatalf("entries of two unreplayed runs: %+v, want fax ids 1 to 4", entries)
	}

	// A replay that recorded them resets the journal: nothing comes back after that.
	j, _, err = openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.reset(); err != nil {
		t.Fatal(err)
	}
	j.close()
	if _, entries, _ = openJournal(dir); len(entries) != 0 {
		t.Fatalf("entries after a reset: %+v", entries)
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
	path := segmentFiles(t, dir)[0]
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

// Under a steady load, where some entry is always waiting for its commit, the journal still
// stays small: full segments are deleted once their entries are recorded. A segment with an
// entry whose commit failed is kept, even at a clean close, for the next replay.
func TestJournalStaysSmallUnderSteadyLoad(t *testing.T) {
	dir := t.TempDir()
	j, _, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := journalEntry{FaxIDs: []int64{123456789}, CallbackURLs: []string{"https://example.com/a/fairly/long/callback/path"}}
	payload, _ := json.Marshal(e)
	perSegment := journalSegmentSize/(8+len(payload)) + 1
	var waiting *segment // always one entry outstanding
	for i := range 10 * perSegment {
		sg, err := j.append(e)
		if err != nil {
			t.Fatal(err)
		}
		if waiting != nil {
			j.recorded(waiting)
		}
		waiting = sg
		if n := len(segmentFiles(t, dir)); n > 2 {
			t.Fatalf("after %d entries the journal has %d files", i+1, n)
		}
	}
	j.recorded(waiting)
	failed, _ := j.append(e)
	j.failedToRecord(failed)
	for range perSegment + 1 { // fills the segment and starts the next one
		sg, _ := j.append(e)
		j.recorded(sg)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	_, entries, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 1 || len(entries) > perSegment+1 {
		t.Fatalf("%d entries kept after a failed commit, want the failed entry's segment", len(entries))
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
	j.append(journalEntry{Numbers: []profile.Number{{PhoneNumber: "+15550109999", CallbackURL: "https://example.com/num", HasCallback: true}}})
	j.close()

	e, err := loadEngine(storageSpec{key: dir, dir: dir, syncWrites: true, minFree: 0}, zap.NewNop())
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
	if n := len(segmentFiles(t, dir)); n != 1 {
		t.Errorf("%d journal files after the replay, want only the new current one", n)
	}
}

// Record returns before the store commit, yet a GET answered right after the send is recorded
// after it: the fax_completed job goes to the send's callback_url, not to the global sent_url.
func TestRecordKeepsTheSendAheadOfLaterObservations(t *testing.T) {
	e := startEngine(t, settings{schedule: queue.DefaultSchedule, sentURLs: []string{"https://example.com/global"}})
	for id := int64(1); id <= 50; id++ {
		send := &Observation{Faxes: []profile.Object{{Fax: obj(id, "queued", time.Time{}).Fax}}, CallbackURLs: []string{"https://example.com/own"}}
		if err := e.sends.recordSync(send); err != nil {
			t.Fatal(err)
		}
		done := obj(id, "success", time.Now())
		if !e.obs.submit(0, func() *Observation { return &Observation{Faxes: []profile.Object{done}} }) {
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
					t.Errorf("fax %d: job to %s, want the send's callback_url", faxIDOf(j), j.URL)
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
