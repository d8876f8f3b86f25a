package module

import (
	"container/heap"
	"time"
)

// Pacing of the poller's status requests (see pollSched).
const (
	// minPollGap is the shortest time between two status requests about one fax (or the poll
	// interval, when that is shorter): how soon after a send the fax is first asked about, and
	// the gap while its pages go by faster than the poller could notice.
	minPollGap = 250 * time.Millisecond
	// pollGrowth is how much the gap grows (×3/2) with each answer that shows no change.
	pollGrowthNum, pollGrowthDen = 3, 2
	// pacePart is the part of a fax's pace (the time between two changes) the gap starts from
	// after a change: a change is looked for four times per expected page.
	pacePart = 4
	// DefaultPollMaxRate is the default cap on the poller's status requests per second.
	DefaultPollMaxRate = 20
)

// pollSched decides when the poller asks about each fax in flight: soon after it is first seen,
// then at a pace learnt from the fax's own changes (every quarter of the time between its last
// changes, so about four requests per page, until a page's time has gone by without a change),
// each answer that shows no change beyond that stretching the gap by half, within [min, max]
// (max is the poll interval). It holds no I/O and reads no clock:
// callers pass now.
type pollSched struct {
	min, max time.Duration
	faxes    map[string]*pollEntry
	due      pollHeap
}

// pollEntry is one fax in flight as the scheduler sees it.
type pollEntry struct {
	fax liveFax
	// at is when the fax is next asked about; index is its place in the heap (-1: out, being
	// asked about).
	at    time.Time
	index int
	// gap is the time from the last answer to at; pace the smoothed time between two changes
	// (0: not known yet); changed when the answer last changed, sum what it was.
	gap     time.Duration
	pace    time.Duration
	changed time.Time
	sum     uint64
	// listed: seen in the latest listing of faxes in flight (sync).
	listed bool
}

// newPollSched returns a scheduler whose gaps stay within [min(minPollGap, interval), interval].
func newPollSched(interval time.Duration) *pollSched {
	s := &pollSched{faxes: map[string]*pollEntry{}}
	s.setInterval(interval)
	return s
}

// setInterval changes the longest gap (a reload's new poll interval); gaps already planned stay.
func (s *pollSched) setInterval(interval time.Duration) {
	s.max = max(interval, time.Millisecond)
	s.min = min(minPollGap, s.max)
}

// sync makes the faxes in flight those of live, as the tracker lists them at now: a new fax is
// asked about min after now; a fax no longer listed (completed, forgotten) is dropped, unless it
// is being asked about (then answered drops it).
func (s *pollSched) sync(live []liveFax, now time.Time) {
	for _, e := range s.faxes {
		e.listed = false
	}
	for _, l := range live {
		if e, ok := s.faxes[l.id]; ok {
			e.fax, e.listed = l, true
			continue
		}
		e := &pollEntry{fax: l, listed: true, gap: s.min, at: now.Add(s.min), index: -1}
		s.faxes[l.id] = e
		heap.Push(&s.due, e)
	}
	for id, e := range s.faxes {
		if !e.listed {
			if e.index >= 0 {
				heap.Remove(&s.due, e.index)
				delete(s.faxes, id)
			}
		}
	}
}

// len returns how many faxes are scheduled (not being asked about).
func (s *pollSched) len() int { return len(s.due) }

// next returns when the next fax is due, and false when there is none.
func (s *pollSched) next() (time.Time, bool) {
	if len(s.due) == 0 {
		return time.Time{}, false
	}
	return s.due[0].at, true
}

// take returns up to n faxes due at now, most overdue first; each is out of the schedule until
// answered puts it back.
func (s *pollSched) take(now time.Time, n int) []*pollEntry {
	var out []*pollEntry
	for len(out) < n && len(s.due) > 0 && !s.due[0].at.After(now) {
		out = append(out, heap.Pop(&s.due).(*pollEntry))
	}
	return out
}

// answered puts a fax that was asked about back in the schedule, given what the answer was
// (sum, a hash of the fax objects read from it, see answerSum; ok false for a failed request,
// which counts as no change): a changed answer brings the next request to a part of the fax's
// pace, an unchanged one stretches the gap. A fax the tracker no longer lists is dropped.
func (s *pollSched) answered(e *pollEntry, now time.Time, sum uint64, ok bool) {
	if !e.listed {
		delete(s.faxes, e.fax.id)
		return
	}
	switch {
	case ok && e.changed.IsZero():
		e.changed, e.sum, e.gap = now, sum, s.min // the first answer
	case ok && sum != e.sum:
		seen := now.Sub(e.changed)
		if e.pace == 0 {
			e.pace = seen
		} else {
			e.pace = (e.pace + seen) / 2
		}
		e.changed, e.sum = now, sum
		e.gap = min(max(e.pace/pacePart, s.min), s.max)
	case e.pace > 0 && now.Sub(e.changed) < e.pace*5/4:
		// No change yet, but none was due: keep looking at the pace's quarter until a page's
		// time (and a bit) has gone by without one.
		e.gap = min(max(e.pace/pacePart, s.min), s.max)
	default:
		e.gap = min(max(e.gap*pollGrowthNum/pollGrowthDen, s.min), s.max)
	}
	e.at = now.Add(e.gap)
	heap.Push(&s.due, e)
}

// reset forgets every fax (the instance stopped leading the fleet, or the poller is off): a
// new leader starts from the tracker's listing.
func (s *pollSched) reset() {
	clear(s.faxes)
	s.due = s.due[:0]
}

// pollHeap orders entries by when they are due.
type pollHeap []*pollEntry

func (h pollHeap) Len() int           { return len(h) }
func (h pollHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h pollHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *pollHeap) Push(x any) {
	e := x.(*pollEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *pollHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

// tokenBucket caps the poller's requests per second: rate tokens a second, at most one
// second's worth saved up.
type tokenBucket struct {
	rate   float64
	tokens float64
	at     time.Time
}

// take returns how many requests may go out at now, at most want, and spends them.
func (b *tokenBucket) take(now time.Time, rate float64, want int) int {
	if rate != b.rate || b.at.IsZero() {
		b.rate, b.tokens, b.at = rate, max(1, rate), now
	}
	b.tokens = min(b.tokens+now.Sub(b.at).Seconds()*rate, max(1, rate))
	b.at = now
	n := min(want, int(b.tokens))
	b.tokens -= float64(n)
	return n
}

// wait returns how long from now until one more request may go out.
func (b *tokenBucket) wait() time.Duration {
	if b.tokens >= 1 || b.rate <= 0 {
		return 0
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}
