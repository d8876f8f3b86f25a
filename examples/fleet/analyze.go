package fleet

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Tally is what the receiver got, judged fax by fax against what the clients expect.
type Tally struct {
	// Expected are the ids of the faxes whose send succeeded: each must produce one fax_completed.
	Expected []int64
	// Delivered are the expected faxes whose fax_completed was accepted at least once.
	Delivered []int64
	// Lost are the expected faxes whose fax_completed was never accepted.
	Lost []int64
	// DuplicateEvents are the faxes for which one state change reached the receiver as two
	// events: two instances each turned the same observation into an event, or each attempted
	// the same job. The fleet must never do that. faxhook's event ids are stable (the fax id,
	// the event type and its extra fields), so such events mostly share their id; a fax counts
	// here when one state change came with two different event ids, or when one event was
	// accepted again although no kill explains it (Unexplained).
	DuplicateEvents []int64
	// Repeated counts the accepted deliveries of an event beyond its first that a kill explains:
	// the instance that sent the previous accepted delivery was killed after sending it and
	// before this one, so it may have died between the receiver's answer and recording it.
	// At-least-once delivery allows them.
	Repeated int
	// RepeatedFaxes are the faxes with such a repeated delivery.
	RepeatedFaxes []int64
	// Unexplained counts the accepted deliveries of an event beyond its first that no kill
	// explains; their faxes are in DuplicateEvents.
	Unexplained int
	// BySender counts the accepted deliveries by the instance that sent them ("?" when the
	// connection could not be traced to an instance): in a fleet, all of them deliver.
	BySender map[string]int
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
	var senders []string
	for _, n := range slices.Sorted(maps.Keys(t.BySender)) {
		senders = append(senders, fmt.Sprintf("%s %d", n, t.BySender[n]))
	}
	fmt.Fprintf(w, "  senders     %s (accepted deliveries by instance)\n", strings.Join(senders, ", "))
	printIDs(w, "lost", t.Lost)
	printIDs(w, "dup events", t.DuplicateEvents)
	fmt.Fprintf(w, "  %-11s %d deliveries of an event already accepted, on %d faxes, explained by a kill (allowed: at least once); %d that no kill explains (duplicates)\n",
		"repeated", t.Repeated, len(t.RepeatedFaxes), t.Unexplained)
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

// killing is one kill of an instance.
type killing struct {
	name string
	at   time.Time
}

// repeatRule says which repeated deliveries a kill explains. A kill explains a repeat when it
// hit the instance that sent the previous accepted delivery of the event (any instance, when
// that sender is not known), at or after slack before that delivery and before the repeat: a
// request sent just before its instance died may still reach the receiver, whose answer then
// goes nowhere. And unless the repeat comes from that same instance (restarted, it may take its
// own claims up again), the repeat must come at least minGap after the previous delivery: no
// other instance may attempt a job before the dead instance's claim on it expires.
type repeatRule struct {
	slack, minGap time.Duration
}

// ruleFor is the repeat rule of a fleet whose delivery attempts time out after timeout: a claim
// lasts timeout + 30s from a moment just before its attempt, so half of that is a floor with a
// wide margin for jobs claimed ahead of their attempt.
func ruleFor(timeout time.Duration) repeatRule {
	return repeatRule{slack: timeout, minGap: (timeout + 30*time.Second) / 2}
}

// tally judges the arrivals (in arrival order) against expected (fax id → the path its events
// must arrive at) and the kills; rule says which repeated deliveries the kills explain.
func tally(expected map[int64]string, arrivals []arrival, kills []killing, rule repeatRule) Tally {
	t := Tally{Requests: len(arrivals), BySender: map[string]int{}}
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
		if a.accepted() {
			t.BySender[cmp.Or(a.from, "?")]++
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
		dup, repeats, unexplained := duplicates(as, kills, rule)
		if dup || unexplained > 0 {
			t.DuplicateEvents = append(t.DuplicateEvents, id)
		}
		if repeats > 0 {
			t.Repeated += repeats
			t.RepeatedFaxes = append(t.RepeatedFaxes, id)
		}
		t.Unexplained += unexplained
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
// counts the accepted deliveries that repeated an event already accepted: those a kill explains
// (see repeatRule), and those none does.
func duplicates(as []arrival, kills []killing, rule repeatRule) (dup bool, repeats, unexplained int) {
	ids := map[string]map[string]bool{} // state key → event ids
	last := map[string]arrival{}        // event id → its latest acceptance
	for _, a := range as {
		k := a.stateKey()
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		ids[k][a.eventID] = true
		if !a.accepted() || a.eventID == "" {
			continue
		}
		if prev, ok := last[a.eventID]; ok {
			if rule.explains(kills, prev, a) {
				repeats++
			} else {
				unexplained++
			}
		}
		last[a.eventID] = a
	}
	for _, set := range ids {
		if len(set) > 1 {
			dup = true
		}
	}
	return dup, repeats, unexplained
}

// explains reports whether a kill explains the delivery a that repeats prev.
func (rule repeatRule) explains(kills []killing, prev, a arrival) bool {
	if prev.from != a.from && a.at.Sub(prev.at) < rule.minGap {
		return false
	}
	from := prev.at.Add(-rule.slack)
	return slices.ContainsFunc(kills, func(k killing) bool {
		return (prev.from == "" || k.name == prev.from) && !k.at.Before(from) && k.at.Before(a.at)
	})
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
