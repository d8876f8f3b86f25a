package fleet

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// Tally is what the receiver got, judged fax by fax against what the clients expect.
type Tally struct {
	// Expected are the ids of the faxes whose send succeeded: each must produce one fax_completed.
	Expected []int64
	// Delivered are the expected faxes whose fax_completed was accepted at least once.
	Delivered []int64
	// Lost are the expected faxes whose fax_completed was never accepted.
	Lost []int64
	// DuplicateEvents are the faxes for which one state change arrived as two or more events
	// (different event ids): two instances each turned the same observation into an event. The
	// fleet must never do that.
	DuplicateEvents []int64
	// Repeated counts the accepted deliveries of an event beyond its first: at-least-once delivery
	// allows them (an instance died between the receiver's answer and recording it).
	Repeated int
	// RepeatedFaxes are the faxes with a repeated delivery.
	RepeatedFaxes []int64
	// OutOfOrder are the faxes whose events arrived in another order than they happened: an
	// inflight event after the fax_completed, a lower page after a higher one, a lower retry
	// count after a higher one.
	OutOfOrder []int64
	// Misrouted are the expected faxes with an event at another URL than the one they asked for.
	Misrouted []int64
	// Unexpected are the faxes with events that no client expected: a send cut off by a kill
	// that the fax service carried out and faxhook recorded nonetheless. Reported only.
	Unexpected []int64
	// Requests is how many webhook requests the receiver got.
	Requests int
	// Refused is how many verified requests the receiver refused on purpose (Options.FailRate).
	Refused int
	// Unverified is how many requests failed signature verification or parsing.
	Unverified int
	// NoEventID is how many requests carried no X-Faxhook-Event-Id: without it duplicates of
	// an event cannot be told from repeated deliveries.
	NoEventID int
}

// OK reports whether every expected fax completed exactly once, in order, at its URL, and every
// request verified.
func (t Tally) OK() bool {
	return len(t.Expected) > 0 && len(t.Lost) == 0 && len(t.DuplicateEvents) == 0 && len(t.OutOfOrder) == 0 &&
		len(t.Misrouted) == 0 && t.Unverified == 0 && t.NoEventID == 0
}

// print writes the tally's lines of a report.
func (t Tally) print(w io.Writer) {
	fmt.Fprintf(w, "  expected    %d faxes sent successfully\n", len(t.Expected))
	fmt.Fprintf(w, "  delivered   %d faxes with an accepted fax_completed (%d webhook requests, %d refused on purpose, %d unverified, %d without event id)\n",
		len(t.Delivered), t.Requests, t.Refused, t.Unverified, t.NoEventID)
	printIDs(w, "lost", t.Lost)
	printIDs(w, "dup events", t.DuplicateEvents)
	fmt.Fprintf(w, "  %-11s %d deliveries of an event already accepted, on %d faxes (allowed: at least once)\n", "repeated", t.Repeated, len(t.RepeatedFaxes))
	printIDs(w, "out of order", t.OutOfOrder)
	printIDs(w, "misrouted", t.Misrouted)
	printIDs(w, "unexpected", t.Unexpected)
}

func printIDs(w io.Writer, label string, ids []int64) {
	const show = 20
	var b strings.Builder
	for i, id := range ids {
		if i == show {
			b.WriteString(" …")
			break
		}
		fmt.Fprintf(&b, " %d", id)
	}
	fmt.Fprintf(w, "  %-11s %d%s\n", label, len(ids), b.String())
}

// Event types faxhook sends.
const (
	eventCompleted    = "fax_completed"
	eventTransmitting = "transmitting_page"
	eventRetry        = "retry_scheduled"
)

// refusedStatus is what the receiver answers a verified request it refuses on purpose.
const refusedStatus = http.StatusServiceUnavailable

// stateKey names the state change an event reports, so that two events about the same change
// (a duplicate) share it: the fax's completion, a recipient's page, a recipient's retry.
func (a arrival) stateKey() string {
	switch a.eventType {
	case eventTransmitting:
		return fmt.Sprintf("%s %s %d", a.eventType, a.recipient, a.page)
	case eventRetry:
		return fmt.Sprintf("%s %s %d", a.eventType, a.recipient, a.retry)
	}
	return a.eventType
}

// tally judges the arrivals (in arrival order) against expected: fax id → the path its events
// must arrive at.
func tally(expected map[int64]string, arrivals []arrival) Tally {
	t := Tally{Requests: len(arrivals)}
	byFax := map[int64][]arrival{}
	for _, a := range arrivals {
		switch {
		case a.status == refusedStatus:
			t.Refused++
		case !a.accepted():
			t.Unverified++
			continue
		}
		if a.eventID == "" {
			t.NoEventID++
		}
		if a.faxID != 0 {
			byFax[a.faxID] = append(byFax[a.faxID], a)
		}
	}
	for id, want := range expected {
		t.Expected = append(t.Expected, id)
		as := byFax[id]
		if slices.ContainsFunc(as, func(a arrival) bool { return a.accepted() && a.eventType == eventCompleted }) {
			t.Delivered = append(t.Delivered, id)
		} else {
			t.Lost = append(t.Lost, id)
		}
		if slices.ContainsFunc(as, func(a arrival) bool { return a.accepted() && a.path != want }) {
			t.Misrouted = append(t.Misrouted, id)
		}
	}
	for id, as := range byFax {
		if _, ok := expected[id]; !ok {
			t.Unexpected = append(t.Unexpected, id)
		}
		dup, repeats := duplicates(as)
		if dup {
			t.DuplicateEvents = append(t.DuplicateEvents, id)
		}
		if repeats > 0 {
			t.Repeated += repeats
			t.RepeatedFaxes = append(t.RepeatedFaxes, id)
		}
		if !inOrder(as) {
			t.OutOfOrder = append(t.OutOfOrder, id)
		}
	}
	for _, s := range [][]int64{t.Expected, t.Delivered, t.Lost, t.DuplicateEvents, t.RepeatedFaxes, t.OutOfOrder, t.Misrouted, t.Unexpected} {
		slices.Sort(s)
	}
	return t
}

// duplicates reports whether one state change of a fax came as events with different ids, and
// how many accepted deliveries repeated an event already accepted.
func duplicates(as []arrival) (dup bool, repeats int) {
	ids := map[string]map[string]bool{} // state key → event ids
	accepted := map[string]int{}        // event id → accepted deliveries
	for _, a := range as {
		k := a.stateKey()
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		ids[k][a.eventID] = true
		if a.accepted() && a.eventID != "" {
			accepted[a.eventID]++
		}
	}
	for _, set := range ids {
		if len(set) > 1 {
			dup = true
		}
	}
	for _, n := range accepted {
		repeats += n - 1
	}
	return dup, repeats
}

// inOrder reports whether a fax's events (every verified attempt, in arrival order) came in the
// order they happened. faxhook attempts an event of a fax only once the earlier ones to the same
// URL are finished, so even a repeated delivery of an earlier event may not follow a later one:
// nothing after fax_completed, per recipient no lower page after a higher one and no lower retry
// count after a higher one, and no retry after the pages that followed it.
func inOrder(as []arrival) bool {
	type progress struct{ retry, page int }
	recips := map[string]*progress{}
	completed := false
	for _, a := range as {
		if a.eventType == eventCompleted {
			completed = true
			continue
		}
		if completed {
			return false
		}
		p := recips[a.recipient]
		if p == nil {
			p = &progress{}
			recips[a.recipient] = p
		}
		switch a.eventType {
		case eventTransmitting:
			if a.page < p.page {
				return false
			}
			p.page = a.page
		case eventRetry:
			switch {
			case a.retry < p.retry, a.retry == p.retry && p.page > 0:
				return false
			case a.retry > p.retry:
				p.retry, p.page = a.retry, 0
			}
		}
	}
	return true
}
