package module

import (
	"testing"
	"time"
)

// A fax is first asked about minPollGap after it is seen; answers that show no change stretch
// the gap by half up to the interval; a change brings the next request to a quarter of the
// fax's pace.
func TestPollSchedPace(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	s := newPollSched(30 * time.Second)
	s.sync([]liveFax{{id: "1", upstream: "1"}}, t0)
	if got := s.take(t0.Add(minPollGap-time.Millisecond), 10); len(got) != 0 {
		t.Fatalf("asked %d faxes before the first gap", len(got))
	}
	now := t0.Add(minPollGap)
	ask := func(sum uint64) time.Duration {
		t.Helper()
		due := s.take(now, 10)
		if len(due) != 1 {
			t.Fatalf("at %s: %d faxes due, want 1", now.Sub(t0), len(due))
		}
		s.answered(due[0], now, sum, true)
		at, _ := s.next()
		gap := at.Sub(now)
		now = at
		return gap
	}
	if g := ask(7); g != minPollGap {
		t.Errorf("gap after the first answer %s, want %s", g, minPollGap)
	}
	var gaps []time.Duration
	for range 12 {
		gaps = append(gaps, ask(7))
	}
	for i := 1; i < len(gaps); i++ {
		if gaps[i] < gaps[i-1] || gaps[i] > 30*time.Second {
			t.Fatalf("unchanged answers: gaps %v; want them growing, at most the interval", gaps)
		}
	}
	if gaps[0] != minPollGap*3/2 || gaps[len(gaps)-1] != 30*time.Second {
		t.Errorf("unchanged answers: gaps %v; want 1.5× steps from %s up to 30s", gaps, minPollGap)
	}
}

// A fax whose answer changes every 8 s (a page): once its pace is learnt, each change is seen
// within a quarter of a page or so, with a handful of requests per page.
func TestPollSchedLearnsThePace(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	const page = 8 * time.Second
	s := newPollSched(30 * time.Second)
	s.sync([]liveFax{{id: "1"}}, t0)
	now, requests := t0, 0
	var late []time.Duration
	lastSeen := uint64(0)
	for now.Before(t0.Add(40 * page)) {
		at, _ := s.next()
		now = at
		due := s.take(now, 1)
		requests++
		state := uint64(now.Sub(t0)/page) + 1
		if state != lastSeen && now.After(t0.Add(5*page)) {
			late = append(late, now.Sub(t0.Add(time.Duration(state-1)*page)))
		}
		lastSeen = state
		s.answered(due[0], now, state, true)
	}
	for _, l := range late {
		if l > page*3/8 {
			t.Errorf("a change was seen %s after it happened; want within about a quarter of a page once the pace is known (all: %v)", l, late)
			break
		}
	}
	if perPage := float64(requests) / 40; perPage > 8 {
		t.Errorf("%.1f requests per page; want at most 8", perPage)
	}
	t.Logf("%d requests for 40 pages of 8 s; changes seen after %v", requests, late)
}

// A fax the tracker no longer lists leaves the schedule, also one being asked about; a fax
// never asked about more often than the bucket allows.
func TestPollSchedSyncAndBucket(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	s := newPollSched(time.Second)
	s.sync([]liveFax{{id: "1"}, {id: "2"}, {id: "3"}}, t0)
	now := t0.Add(time.Second)
	due := s.take(now, 2)
	if len(due) != 2 || s.len() != 1 {
		t.Fatalf("took %d, %d left; want 2 and 1", len(due), s.len())
	}
	s.sync([]liveFax{{id: "1"}}, now) // 2 and 3 completed
	for _, e := range due {
		s.answered(e, now, 1, true)
	}
	if len(s.faxes) != 1 || s.len() != 1 || s.faxes["1"] == nil {
		t.Fatalf("after sync: %d faxes, %d due; want only fax 1", len(s.faxes), s.len())
	}

	var b tokenBucket
	got := 0
	for ms := 0; ms < 10_000; ms += 10 { // 10 s, a request wanted every 10 ms
		got += b.take(t0.Add(time.Duration(ms)*time.Millisecond), 20, 1000)
	}
	if got > 20*10+20 || got < 20*10 {
		t.Errorf("bucket at 20/s let %d requests through in 10 s; want 200 (+ a second's burst)", got)
	}
}

// With a poll interval shorter than minPollGap, the interval is every gap.
func TestPollSchedShortInterval(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	s := newPollSched(100 * time.Millisecond)
	s.sync([]liveFax{{id: "1"}}, t0)
	now := t0
	for range 5 {
		now = now.Add(100 * time.Millisecond)
		due := s.take(now, 1)
		if len(due) != 1 {
			t.Fatalf("at %s: nothing due", now.Sub(t0))
		}
		s.answered(due[0], now, 1, true)
	}
}
