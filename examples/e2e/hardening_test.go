package e2e

// Regression tests of issue 12 (parts 1 and 2): one fax with many recipients, or many faxes
// completing between two poll rounds, must neither wedge the poller nor keep other faxes from
// their webhooks, before or after a restart. The caps they rely on (max_recipients, max_events,
// 1 MiB of event payload per observation of a fax) are described in README.md, Events, Bounds.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// The documented defaults of the caps on a fax's inflight events.
const (
	defaultMaxEvents = 1000    // max_events: inflight events of one observation of one fax
	maxEventBytes    = 1 << 20 // event payload of one observation of one fax
)

// simTick is the simulated fax service's tick in these tests.
const simTick = 50 * time.Millisecond

// simClock is the simulated fax service's clock: real time plus an offset, which the test can
// freeze and then move forward in one jump, so that faxes sent while it is frozen all complete
// between two poll rounds, whatever the speed of the machine.
type simClock struct {
	mu     sync.Mutex
	frozen bool
	at     time.Time     // the time while frozen
	offset time.Duration // added to real time while running
}

// Now returns the simulated time.
func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return c.at
	}
	return time.Now().Add(c.offset)
}

// freeze stops the clock.
func (c *simClock) freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen {
		c.at, c.frozen = time.Now().Add(c.offset), true
	}
}

// resume moves a frozen clock forward by jump and lets it run again from there.
func (c *simClock) resume(jump time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		c.offset, c.frozen = c.at.Add(jump).Sub(time.Now()), false
	}
}

// newClockedEnv starts an env whose fax service runs on a simClock.
func newClockedEnv(t *testing.T, faxhookOpts string) (*env, *simClock) {
	t.Helper()
	clk := &simClock{}
	e := newEnvWith(t, faxapp.Config{Tick: simTick, Seed: 3, Now: clk.Now}, nil, faxhookOpts)
	return e, clk
}

// pollEvery is a poll option block for the env's fax service with the given interval.
func pollEvery(interval time.Duration) string {
	return fmt.Sprintf("poll {\n\t\t\tupstream FAX/v2.1\n\t\t\tcredentials %s %s\n\t\t\tinterval %s\n\t\t}", key, secret, interval)
}

// faxEvents are the deliveries of one fax, in arrival order.
type faxEvents struct {
	completed []receiver.Delivery
	inflight  []receiver.Delivery
}

// byFax groups deliveries by the id of their fax object.
func byFax(t *testing.T, ds []receiver.Delivery) map[int64]*faxEvents {
	t.Helper()
	out := map[int64]*faxEvents{}
	for _, d := range ds {
		id := parseFax(t, d).ID
		fe := out[id]
		if fe == nil {
			fe = &faxEvents{}
			out[id] = fe
		}
		if d.Fields["event_type"] == "fax_completed" {
			fe.completed = append(fe.completed, d)
		} else {
			fe.inflight = append(fe.inflight, d)
		}
	}
	return out
}

// waitUntil waits, up to d, until cond holds for the receiver's deliveries, and returns them.
// On timeout it fails the test with what describe says about the deliveries seen.
func (e *env) waitUntil(d time.Duration, cond func([]receiver.Delivery) bool, describe func([]receiver.Delivery) string) []receiver.Delivery {
	e.t.Helper()
	ctx := ctxT(e.t, d)
	for {
		ds := e.rcv.Deliveries()
		if cond(ds) {
			return ds
		}
		// Wake on the next delivery, or look again after a while.
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		e.rcv.Wait(wctx, len(ds)+1)
		cancel()
		if ctx.Err() != nil {
			ds = e.rcv.Deliveries()
			if cond(ds) {
				return ds
			}
			e.t.Fatalf("after %s: %s", d, describe(ds))
		}
	}
}

// waitFinal waits, asking the fax service directly (not through Caddy, which would observe the
// answer), until fax id is final, and returns its state.
func (e *env) waitFinal(id int64, d time.Duration) fax.Fax {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		f, ok := e.svc.Fax(id)
		if !ok {
			e.t.Fatalf("fax %d unknown to the fax service", id)
		}
		if fax.IsTerminal(f.Status) {
			return f
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("fax %d still %q after %s", id, f.Status, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expectedInflight is the set of inflight events (as summary renders them) a fax in its final
// state f must have produced: every page to every recipient it reached and every retry.
func expectedInflight(f fax.Fax) map[string]bool {
	want := map[string]bool{}
	for _, r := range f.Recipients {
		for i := 1; i <= r.RetryCount; i++ {
			want["retry "+r.PhoneNumber+" "+strconv.Itoa(i)] = true
		}
		if r.Status != nil && *r.Status == fax.StatusSuccess {
			for p := 1; p <= f.NumPages; p++ {
				want["page "+r.PhoneNumber+" "+strconv.Itoa(p)] = true
			}
		}
	}
	return want
}

// checkNormalFax checks that a fax with few recipients got every inflight event its final state
// f implies, once each, and exactly one fax_completed at url with that final status.
func checkNormalFax(t *testing.T, fe *faxEvents, f fax.Fax, url string) {
	t.Helper()
	if fe == nil {
		t.Errorf("fax %d (%s): no webhook at all", f.ID, f.Status)
		return
	}
	if len(fe.completed) != 1 {
		t.Errorf("fax %d: %d fax_completed webhooks, want 1", f.ID, len(fe.completed))
	} else if d := fe.completed[0]; d.URL != url || !d.Verified || parseFax(t, d).Status != f.Status {
		t.Errorf("fax %d: fax_completed to %s (verified %v) with status %q; want %s, %q", f.ID, d.URL, d.Verified, parseFax(t, d).Status, url, f.Status)
	}
	want := expectedInflight(f)
	got := map[string]bool{}
	for _, d := range fe.inflight {
		s := summary(d)
		if got[s] || !want[s] || d.URL != url || !d.Verified {
			t.Errorf("fax %d: unexpected inflight webhook %q to %s (verified %v)", f.ID, s, d.URL, d.Verified)
		}
		got[s] = true
	}
	for s := range want {
		if !got[s] {
			t.Errorf("fax %d: missing inflight webhook %q", f.ID, s)
		}
	}
}

// hasAllCompleted reports whether every fax in ids has its fax_completed.
func hasAllCompleted(ds []receiver.Delivery, ids []int64) bool {
	done := map[int64]bool{}
	for _, d := range ds {
		if d.Fields["event_type"] == "fax_completed" {
			done[faxID(d)] = true
		}
	}
	for _, id := range ids {
		if !done[id] {
			return false
		}
	}
	return true
}

// faxID is the fax id of a delivery, 0 if its fax field does not carry one.
func faxID(d receiver.Delivery) int64 {
	f := d.Fields["fax"]
	i := strings.Index(f, `"id":`)
	if i < 0 {
		return 0
	}
	f = f[i+5:]
	j := strings.IndexAny(f, ",}")
	if j < 0 {
		return 0
	}
	id, _ := strconv.ParseInt(f[:j], 10, 64)
	return id
}

// missingCompleted describes which faxes of ids lack their fax_completed.
func missingCompleted(ids []int64) func([]receiver.Delivery) string {
	return func(ds []receiver.Delivery) string {
		done := map[int64]bool{}
		for _, d := range ds {
			if d.Fields["event_type"] == "fax_completed" {
				done[faxID(d)] = true
			}
		}
		var missing []int64
		for _, id := range ids {
			if !done[id] {
				missing = append(missing, id)
			}
		}
		return fmt.Sprintf("%d of %d faxes have no fax_completed webhook (first: %v); %d deliveries in all",
			len(missing), len(ids), missing[:min(len(missing), 5)], len(ds))
	}
}

// metric returns the value of a sample on Caddy's admin /metrics, e.g.
// `faxhook_fax_events_capped_total{reason="bytes"}` or `faxhook_storage_degraded`, and whether
// it was there (false too when the admin endpoint did not answer).
func (e *env) metric(sample string) (float64, bool) {
	resp, err := http.Get("http://" + e.admin + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// sendNormal sends one fax with a few recipients through Caddy, with its own callback_url; no
// client asks about it afterwards, so only faxhook's poller observes it.
func (e *env) sendNormal(ctx context.Context, name string) (int64, string) {
	e.t.Helper()
	url := e.rcvURL + "/normal/" + name
	id, err := e.client.Send(ctx, harness.SendOptions{To: []string{"+15550200000", "+15550200001"}, File: faxapp.PDF(2), CallbackURL: url})
	if err != nil {
		e.t.Fatal(err)
	}
	return id, url
}

// A fax to 150 recipients whose progress one poll answer reveals in one go (about 450 page
// events of a 20 KB fax object each) must not keep later faxes from their webhooks, before or
// after a restart, and gets its own fax_completed exactly once.
func TestFaxToManyRecipientsDoesNotBlockOtherFaxes(t *testing.T) {
	e, clk := newClockedEnv(t, "inflight on\n\t\t"+pollEvery(time.Second))
	ctx := ctxT(t, 150*time.Second)

	// The big fax is queued while the clock stands still and has transmitted every page to every
	// recipient when it moves again: the poller's next answer shows the whole fax at once.
	clk.freeze()
	var to []string
	for i := range 150 {
		to = append(to, fmt.Sprintf("+1555031%04d", 1000+i))
	}
	bigURL := e.rcvURL + "/big"
	big, err := e.client.Send(ctx, harness.SendOptions{To: to, File: faxapp.PDF(3), CallbackURL: bigURL})
	if err != nil {
		t.Fatal(err)
	}
	clk.resume(40 * simTick)
	bigFinal := e.waitFinal(big, 10*time.Second)

	// Faxes sent afterwards, polled by faxhook alone.
	var ids []int64
	urls := map[int64]string{}
	for i := range 3 {
		id, url := e.sendNormal(ctx, strconv.Itoa(i))
		ids, urls[id] = append(ids, id), url
	}
	finals := map[int64]fax.Fax{}
	for _, id := range ids {
		finals[id] = e.waitFinal(id, 10*time.Second)
	}
	ds := e.waitUntil(40*time.Second, func(ds []receiver.Delivery) bool { return hasAllCompleted(ds, append(ids, big)) },
		missingCompleted(append(ids, big)))
	// Deliveries of one fax's events may trail its fax_completed by a moment; wait until each
	// normal fax has all its inflight events too (checked exactly below).
	ds = e.waitUntil(20*time.Second, func(ds []receiver.Delivery) bool {
		fs := byFax(t, ds)
		for _, id := range ids {
			if fs[id] == nil || len(fs[id].inflight) < len(expectedInflight(finals[id])) {
				return false
			}
		}
		return true
	}, func(ds []receiver.Delivery) string {
		return fmt.Sprintf("normal faxes lack inflight webhooks; %d deliveries", len(ds))
	})
	time.Sleep(500 * time.Millisecond) // let anything that should not arrive show itself
	fs := byFax(t, e.rcv.Deliveries())
	for _, id := range ids {
		checkNormalFax(t, fs[id], finals[id], urls[id])
	}

	// The big fax: one fax_completed with every recipient, and no more inflight events from one
	// observation than the caps allow. Events from one observation carry the same fax object,
	// so grouping them by it bounds each observation's share.
	fe := fs[big]
	if fe == nil {
		t.Fatal("the 150-recipient fax got no webhook")
	}
	if len(fe.completed) != 1 {
		t.Fatalf("the 150-recipient fax got %d fax_completed webhooks, want 1", len(fe.completed))
	}
	var done faxField
	d := fe.completed[0]
	if done = parseFax(t, d); done.Status != bigFinal.Status || d.URL != bigURL || !d.Verified || strings.Count(d.Fields["fax"], `"phone_number"`) != 150 {
		t.Errorf("the big fax's fax_completed: status %q (want %q), URL %s, verified %v, %d recipients",
			done.Status, bigFinal.Status, d.URL, d.Verified, strings.Count(d.Fields["fax"], `"phone_number"`))
	}
	checkCapped(t, fe.inflight, bigURL)
	if n, _ := e.metric(`faxhook_fax_events_capped_total{reason="bytes"}`); n < 1 {
		t.Errorf(`faxhook_fax_events_capped_total{reason="bytes"} = %v, want at least 1 (the big fax's observation)`, n)
	}
	t.Logf("150-recipient fax %d (%s): %d inflight webhooks, 1 fax_completed; %d deliveries in all",
		big, bigFinal.Status, len(fe.inflight), len(ds))

	// A restart on the same storage: Caddy starts, proxies, and a fax sent afterwards gets its
	// webhooks; the big fax gets no second fax_completed.
	if err := e.caddy.Stop(); err != nil {
		t.Fatalf("stopping caddy: %v", err)
	}
	if err := e.caddy.Start(); err != nil {
		t.Fatalf("caddy does not start again on the same storage: %v", err)
	}
	if s, err := e.client.Status(ctx, big); err != nil || s != bigFinal.Status {
		t.Fatalf("after the restart, GET /faxes/%d through caddy: %q, %v", big, s, err)
	}
	after, url := e.sendNormal(ctx, "after-restart")
	final := e.waitFinal(after, 10*time.Second)
	want := len(expectedInflight(final)) + 1
	e.waitUntil(40*time.Second, func(ds []receiver.Delivery) bool {
		fe := byFax(t, ds)[after]
		return fe != nil && len(fe.completed)+len(fe.inflight) >= want
	}, func(ds []receiver.Delivery) string {
		return fmt.Sprintf("fax %d sent after the restart has not got its %d webhooks; %d deliveries in all", after, want, len(ds))
	})
	time.Sleep(500 * time.Millisecond)
	fs = byFax(t, e.rcv.Deliveries())
	checkNormalFax(t, fs[after], final, url)
	if n := len(fs[big].completed); n != 1 {
		t.Errorf("after the restart the big fax has %d fax_completed webhooks, want 1", n)
	}
}

// checkCapped checks that the inflight webhooks of one fax, grouped by the observation that
// produced them (their fax object), stay within max_events and 1 MiB of fax objects per
// observation, and went to url.
func checkCapped(t *testing.T, inflight []receiver.Delivery, url string) {
	t.Helper()
	groups := map[string]int{}
	for _, d := range inflight {
		groups[d.Fields["fax"]]++
		if d.URL != url || !d.Verified {
			t.Errorf("inflight webhook to %s (verified %v), want %s", d.URL, d.Verified, url)
		}
	}
	for obj, n := range groups {
		if n > defaultMaxEvents || n*len(obj) > maxEventBytes {
			t.Errorf("one observation of the fax produced %d inflight webhooks of a %d-byte fax object (%d bytes); the caps are %d events and %d bytes",
				n, len(obj), n*len(obj), defaultMaxEvents, maxEventBytes)
		}
	}
}

// 600 three-page faxes that all complete between two poll rounds: the round's answers imply
// 2,400 webhooks at once, and every fax gets its fax_completed and its page events.
func TestManyFaxesCompletingBetweenPollRounds(t *testing.T) {
	e, clk := newClockedEnv(t, "inflight on\n\t\t"+pollEvery(time.Second))
	ctx := ctxT(t, 120*time.Second)
	const faxes, senders = 600, 8

	clk.freeze()
	ids := make([]int64, faxes)
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	pdf := faxapp.PDF(3)
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < faxes; i += senders {
				id, err := e.client.Send(ctx, harness.SendOptions{To: []string{"+15550200000"}, File: pdf, CallbackURL: e.rcvURL + "/many"})
				if err != nil {
					errs <- err
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every fax is queued; from the next instant on, every one is complete.
	clk.resume(20 * simTick)
	finals := map[int64]fax.Fax{}
	for _, id := range ids {
		finals[id] = e.waitFinal(id, 10*time.Second)
	}

	e.waitUntil(60*time.Second, func(ds []receiver.Delivery) bool { return hasAllCompleted(ds, ids) }, missingCompleted(ids))
	e.waitUntil(20*time.Second, func(ds []receiver.Delivery) bool { return len(ds) >= faxes*4 },
		func(ds []receiver.Delivery) string {
			return fmt.Sprintf("%d deliveries, want %d (3 pages and fax_completed per fax)", len(ds), faxes*4)
		})
	time.Sleep(500 * time.Millisecond)
	fs := byFax(t, e.rcv.Deliveries())
	bad := 0
	for _, id := range ids {
		fe := fs[id]
		if fe == nil || len(fe.completed) != 1 || len(fe.inflight) != 3 {
			bad++
			if bad <= 5 {
				n, c := 0, 0
				if fe != nil {
					n, c = len(fe.inflight), len(fe.completed)
				}
				t.Errorf("fax %d: %d fax_completed and %d page webhooks, want 1 and 3", id, c, n)
			}
			continue
		}
		checkNormalFax(t, fe, finals[id], e.rcvURL+"/many")
	}
	if bad > 0 {
		t.Errorf("%d of %d faxes lack webhooks", bad, faxes)
	}
}

// With max_recipients 20, a sent fax to 30 recipients gets only its fax_completed, however its
// progress is observed, while a fax to 10 recipients sent with it gets every inflight event.
func TestMaxRecipientsLeavesOutInflightEvents(t *testing.T) {
	e := newEnv(t, nil, "inflight on\n\t\tmax_recipients 20\n\t\t"+pollEvery(200*time.Millisecond))
	ctx := ctxT(t, 90*time.Second)
	send := func(n int, name string) (int64, string) {
		var to []string
		for i := range n {
			to = append(to, fmt.Sprintf("+1555032%04d", 1000+i))
		}
		url := e.rcvURL + "/" + name
		id, err := e.client.Send(ctx, harness.SendOptions{To: to, File: faxapp.PDF(3), CallbackURL: url})
		if err != nil {
			t.Fatal(err)
		}
		return id, url
	}
	wide, wideURL := send(30, "wide")
	narrow, narrowURL := send(10, "narrow")
	wideFinal, narrowFinal := e.waitFinal(wide, 20*time.Second), e.waitFinal(narrow, 20*time.Second)
	want := len(expectedInflight(narrowFinal)) + 1
	e.waitUntil(40*time.Second, func(ds []receiver.Delivery) bool {
		fs := byFax(t, ds)
		return hasAllCompleted(ds, []int64{wide, narrow}) && len(fs[narrow].inflight)+1 >= want
	}, func(ds []receiver.Delivery) string {
		return fmt.Sprintf("want both fax_completed and the narrow fax's %d webhooks; %d deliveries", want, len(ds))
	})
	time.Sleep(500 * time.Millisecond)
	fs := byFax(t, e.rcv.Deliveries())
	checkNormalFax(t, fs[narrow], narrowFinal, narrowURL)
	fe := fs[wide]
	if len(fe.inflight) != 0 || len(fe.completed) != 1 {
		t.Errorf("the 30-recipient fax got %d inflight and %d fax_completed webhooks, want 0 and 1", len(fe.inflight), len(fe.completed))
	} else if d := fe.completed[0]; d.URL != wideURL || parseFax(t, d).Status != wideFinal.Status {
		t.Errorf("its fax_completed went to %s with status %q, want %s, %q", d.URL, parseFax(t, d).Status, wideURL, wideFinal.Status)
	}
	if n, _ := e.metric(`faxhook_fax_events_capped_total{reason="recipients"}`); n < 1 {
		t.Errorf(`faxhook_fax_events_capped_total{reason="recipients"} = %v, want at least 1`, n)
	}
}
