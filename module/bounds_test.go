package module

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/queue"
)

// multiFax is a sent fax with n recipients and pages pages, every recipient in the given status
// (all pages sent when it is success).
func multiFax(id int64, n, pages int, status string) profile.Object {
	f := fax.Fax{ID: id, Direction: fax.DirectionSent, Status: status, IsTest: true, NumPages: pages}
	for i := range n {
		f.Recipients = append(f.Recipients, fax.Recipient{PhoneNumber: fmt.Sprintf("+1555%07d", i), Status: fax.Str(status)})
	}
	if fax.IsTerminal(status) {
		f.CompletedAt = fax.Str(time.Now().Format("2006-01-02T15:04:05.000-07:00"))
	}
	return profile.Object{Fax: f, Full: true}
}

// send is the observation of a send request with its callback_url: the fax exists, in flight.
func send(id int64, callbackURL string) *Observation {
	return &Observation{Faxes: []profile.Object{{Fax: fax.Fax{ID: id}}}, CallbackURLs: []string{callbackURL}}
}

// trackedCallback returns the callback URLs the tracker holds for a fax.
func trackedCallback(t *testing.T, e *engine, id int64) []string {
	t.Helper()
	var rec trackedFax
	err := e.store.View(func(tx queue.Tx) error {
		v, err := tx.State(faxKey(id))
		if err != nil {
			return err
		}
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		t.Fatalf("reading fax %d: %v", id, err)
	}
	return rec.CallbackURLs
}

// countByType counts jobs per event type.
func countByType(jobs []*queue.Job) map[string]int {
	n := map[string]int{}
	for _, j := range jobs {
		n[eventTypeOf(j)]++
	}
	return n
}

// A hostile answer (a fax claiming 100,000 pages, each an inflight event) recorded in one batch
// with three sends: the sends keep their callback_url, and the hostile fax gets its
// fax_completed without the flood of transmitting_page events.
func TestPoisonedBatchKeepsTheOtherSendsCallbackURLs(t *testing.T) {
	e := newTestEngine(t, settings{inflight: true, sentURLs: []string{"https://global.example/sent"}})
	before := testutil.ToFloat64(metricEventsCapped.WithLabelValues(capEvents))
	hostile := multiFax(1, 1, 100000, fax.StatusSuccess)
	record(t, e, send(1, "https://cb.example/hostile"))
	record(t, e,
		&Observation{Faxes: []profile.Object{hostile}},
		send(2, "https://cb.example/2"), send(3, "https://cb.example/3"), send(4, "https://cb.example/4"))
	for id := int64(2); id <= 4; id++ {
		if got := trackedCallback(t, e, id); len(got) != 1 || got[0] != fmt.Sprintf("https://cb.example/%d", id) {
			t.Errorf("fax %d: callback URLs %v", id, got)
		}
	}
	n := countByType(allJobs(t, e))
	if n[fax.EventFaxCompleted] != 1 || n[fax.EventTransmittingPage] != 0 {
		t.Errorf("hostile fax: jobs by type %v, want one fax_completed and no transmitting_page", n)
	}
	if got := testutil.ToFloat64(metricEventsCapped.WithLabelValues(capEvents)) - before; got != 1 {
		t.Errorf("faxhook_fax_events_capped_total{reason=events} rose by %v, want 1", got)
	}
}

// 600 three-page faxes completing between two poll rounds are one batch of 2,400 jobs, more
// than one store transaction takes: every fax still gets all its events.
func TestLargeBatchIsCommittedInPieces(t *testing.T) {
	e := newTestEngine(t, settings{inflight: true, sentURLs: []string{"https://global.example/sent"}})
	const faxes = 600
	var sends, done []*Observation
	for id := int64(1); id <= faxes; id++ {
		sends = append(sends, send(id, "https://cb.example/x"))
		done = append(done, &Observation{Faxes: []profile.Object{multiFax(id, 1, 3, fax.StatusSuccess)}})
	}
	record(t, e, sends...)
	record(t, e, done...)
	n := countByType(allJobs(t, e))
	if n[fax.EventFaxCompleted] != faxes || n[fax.EventTransmittingPage] != 3*faxes {
		t.Fatalf("jobs by type %v, want %d fax_completed and %d transmitting_page", n, faxes, 3*faxes)
	}
}

// A fax whose stored record is corrupt cannot be recorded; the faxes observed with it are, and
// the bad one is counted.
func TestCorruptRecordFailsNoOtherFax(t *testing.T) {
	e := newTestEngine(t, settings{sentURLs: []string{"https://global.example/sent"}})
	if err := e.store.Update(func(tx queue.Tx) error { return tx.PutState(faxKey(5), []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(metricRejected)
	now := time.Now()
	batch := []*Observation{
		{Faxes: []profile.Object{obj(4, fax.StatusSuccess, now)}},
		{Faxes: []profile.Object{obj(5, fax.StatusSuccess, now)}},
		{Faxes: []profile.Object{obj(6, fax.StatusSuccess, now), obj(7, fax.StatusSuccess, now)}},
	}
	if err := e.tracker.record(batch); err != nil {
		t.Fatalf("a corrupt record failed the batch: %v", err)
	}
	jobs := allJobs(t, e)
	got := map[int64]bool{}
	for _, j := range jobs {
		got[faxIDOf(j)] = true
	}
	if len(jobs) != 3 || !got[4] || !got[6] || !got[7] {
		t.Errorf("jobs for faxes %v, want 4, 6 and 7", got)
	}
	if batch[1].rejected == nil || batch[0].rejected != nil || batch[2].rejected != nil {
		t.Errorf("rejected: %v %v %v, want only the second observation", batch[0].rejected, batch[1].rejected, batch[2].rejected)
	}
	if d := testutil.ToFloat64(metricRejected) - before; d != 1 {
		t.Errorf("faxhook_observations_rejected_total rose by %v, want 1", d)
	}
}

// A fax with more recipients than max_recipients gets only fax_completed; one within the bound
// gets every inflight event. With a bound of 5: 6 recipients are over it, 5 are not.
func TestMaxRecipientsLeavesOutInflightEvents(t *testing.T) {
	e := newTestEngine(t, settings{inflight: true, maxRecipients: 5, sentURLs: []string{"https://global.example/sent"}})
	record(t, e, send(1, "https://cb.example/1"), send(2, "https://cb.example/2"))
	record(t, e, &Observation{Faxes: []profile.Object{multiFax(1, 6, 2, fax.StatusInProgress)}})
	record(t, e, &Observation{Faxes: []profile.Object{multiFax(1, 6, 2, fax.StatusSuccess)}},
		&Observation{Faxes: []profile.Object{multiFax(2, 5, 2, fax.StatusSuccess)}})
	byFax := map[int64]map[string]int{1: {}, 2: {}}
	for _, j := range allJobs(t, e) {
		byFax[faxIDOf(j)][eventTypeOf(j)]++
	}
	if n := byFax[1]; n[fax.EventFaxCompleted] != 1 || n[fax.EventTransmittingPage] != 0 {
		t.Errorf("fax over max_recipients: %v, want only fax_completed", n)
	}
	if n := byFax[2]; n[fax.EventFaxCompleted] != 1 || n[fax.EventTransmittingPage] != 10 {
		t.Errorf("fax within max_recipients: %v, want 10 transmitting_page and fax_completed", n)
	}
}

// One observation implying more than max_events inflight events sends none of them, and later
// pages of the same fax are announced again as they come.
func TestMaxEventsLeavesOutOneObservation(t *testing.T) {
	e := newTestEngine(t, settings{inflight: true, maxEvents: 10, sentURLs: []string{"https://global.example/sent"}})
	record(t, e, send(1, "https://cb.example/1"))
	at := func(page int) profile.Object {
		o := multiFax(1, 1, 20, fax.StatusInProgress)
		o.CurrentPage = map[string]int{o.Fax.Recipients[0].PhoneNumber: page}
		return o
	}
	record(t, e, &Observation{Faxes: []profile.Object{at(12)}}) // 12 events: over the bound
	record(t, e, &Observation{Faxes: []profile.Object{at(15)}}) // 3 more: within it
	var pages []string
	for _, j := range allJobs(t, e) {
		for _, f := range j.Fields {
			if f.Name == "page" {
				pages = append(pages, f.Value)
			}
		}
	}
	slices.Sort(pages)
	if strings.Join(pages, ",") != "13,14,15" {
		t.Errorf("pages announced: %v, want 13, 14 and 15 only", pages)
	}
}

// A send journal with thousands of entries, some of which can never be recorded, opens: the
// rest is recorded, the bad ones go to the set-aside file, and the journal is emptied.
func TestReplayOfAHugeJournalWithBadEntriesStarts(t *testing.T) {
	dir := t.TempDir()
	st, err := queue.OpenBadger(dir, queue.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := map[int64]bool{17: true, 2500: true, 4999: true}
	err = st.Update(func(tx queue.Tx) error {
		for id := range bad {
			if err := tx.PutState(faxKey(id), []byte("corrupt")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	j, _, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	const entries = 5000
	for id := int64(1); id <= entries; id++ {
		if _, err := j.append(journalEntry{FaxIDs: []int64{id}, CallbackURLs: []string{fmt.Sprintf("https://cb.example/%d", id)}}); err != nil {
			t.Fatal(err)
		}
	}
	j.close()

	e, err := loadEngine(storageSpec{key: dir, dir: dir, syncWrites: true, minFree: 0}, zap.NewNop())
	if err != nil {
		t.Fatalf("opening the storage with a huge journal: %v", err)
	}
	t.Cleanup(func() { engines.Delete(dir) })
	for _, id := range []int64{1, 16, 18, 2499, 4998, 5000} {
		if got := trackedCallback(t, e, id); len(got) != 1 || got[0] != fmt.Sprintf("https://cb.example/%d", id) {
			t.Errorf("fax %d: callback URLs %v after the replay", id, got)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, setAsideName))
	if err != nil {
		t.Fatalf("reading the set-aside file: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(bad) {
		t.Errorf("set-aside file has %d lines, want %d:\n%s", len(lines), len(bad), b)
	}
	for _, l := range lines {
		var v struct {
			Error string       `json:"error"`
			Entry journalEntry `json:"entry"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil || len(v.Entry.FaxIDs) != 1 || !bad[v.Entry.FaxIDs[0]] || v.Error == "" {
			t.Errorf("set-aside line %s (%v)", l, err)
		}
	}
	if n := len(segmentFiles(t, dir)); n != 1 {
		t.Errorf("%d journal files after the replay, want only the new current one", n)
	}
}

// A large fax (a 700 KB fax object: some thousands of recipients) completing with three sent
// URLs is recorded: its tracked record and three fax_completed jobs are more than Badger takes in
// one transaction unless large values go to the value log.
func TestLargeFaxObjectToSeveralURLsIsRecorded(t *testing.T) {
	urls := []string{"https://a.example/sent", "https://b.example/sent", "https://c.example/sent"}
	e := newTestEngine(t, settings{sentURLs: urls})
	big := multiFax(9, 5000, 1, fax.StatusSuccess)
	if b, _ := big.Fax.JSON(); len(b) < 600<<10 {
		t.Fatalf("fax object of %d bytes; the test wants one of several hundred KB", len(b))
	}
	record(t, e, &Observation{Faxes: []profile.Object{{Fax: fax.Fax{ID: 9}}}}, &Observation{Faxes: []profile.Object{big}})
	if n := countByType(allJobs(t, e)); n[fax.EventFaxCompleted] != len(urls) {
		t.Fatalf("jobs by type %v, want %d fax_completed", n, len(urls))
	}
}

// Observations waiting for the worker hold at most maxBacklogBytes of captured responses: while
// the worker is busy, a burst of 1 MiB responses is queued up to that bound and the rest is
// dropped and counted, never queued without bound. What was queued is recorded once the worker
// is free again.
func TestObservationBacklogIsBoundedByBytes(t *testing.T) {
	e := startEngine(t, settings{schedule: queue.DefaultSchedule})
	release := make(chan struct{})
	if !e.obs.submit(0, func() *Observation { <-release; return nil }) {
		t.Fatal("the first observation was refused")
	}
	before := testutil.ToFloat64(metricCaptureSkipped.WithLabelValues("backlog_full"))
	var ran atomic.Int64
	accepted := 0
	for range 2 * maxBacklogBytes >> 20 {
		if e.obs.submit(1<<20, func() *Observation { ran.Add(1); return nil }) {
			accepted++
		}
	}
	close(release)
	if accepted == 0 || accepted > maxBacklogBytes>>20 {
		t.Fatalf("%d observations of 1 MiB queued, want at most %d", accepted, maxBacklogBytes>>20)
	}
	if d := testutil.ToFloat64(metricCaptureSkipped.WithLabelValues("backlog_full")) - before; int(d) != 2*maxBacklogBytes>>20-accepted {
		t.Errorf("backlog_full rose by %v, want %d", d, 2*maxBacklogBytes>>20-accepted)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ran.Load() < int64(accepted) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if ran.Load() != int64(accepted) {
		t.Fatalf("%d of %d queued observations ran", ran.Load(), accepted)
	}
	if b := e.obs.backlog.Load(); b != 0 {
		t.Errorf("backlog accounts %d bytes after the queue drained", b)
	}
}
