package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
)

// adaptivePoll is a poll block with the given interval and options.
func adaptivePoll(interval, extra string) string {
	return fmt.Sprintf("poll {\n\t\t\tupstream FAX/v2.1\n\t\t\tcredentials %s %s\n\t\t\tinterval %s\n\t\t\t%s\n\t\t}", key, secret, interval, extra)
}

// A 3-page fax that no client asks about is reported within 2 s of completing, though the poll
// interval is 30 s: the poller asks about it soon after the send and at its pages' pace, and
// the number of status requests it costs stays bounded.
func TestAdaptivePollingReportsPromptly(t *testing.T) {
	e := newEnvIn(t, faxapp.Config{Tick: 400 * time.Millisecond, Seed: 11}, nil,
		"sent_url RCV/sent\n\t\t"+adaptivePoll("30s", ""), "")
	ctx := ctxT(t, 60*time.Second)
	id, err := e.client.Send(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(3)})
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	ds, err := e.rcv.Wait(ctx, 1)
	if err != nil {
		t.Fatalf("no webhook within 60 s: %v", err)
	}
	d := ds[0]
	var f struct {
		ID          int64  `json:"id"`
		NumPages    int    `json:"num_pages"`
		CompletedAt string `json:"completed_at"`
	}
	if err := json.Unmarshal([]byte(d.Fields["fax"]), &f); err != nil || f.ID != id || d.Fields["event_type"] != "fax_completed" {
		t.Fatalf("webhook %v (fax %s): want fax_completed of fax %d", d.Fields["event_type"], d.Fields["fax"], id)
	}
	done, err := time.Parse(time.RFC3339Nano, f.CompletedAt)
	if err != nil {
		t.Fatalf("completed_at %q: %v", f.CompletedAt, err)
	}
	late := d.Time.Sub(done)
	asked := len(e.files.statusRequests()[strconv.FormatInt(id, 10)])
	t.Logf("fax of %d pages took %s from the send to completing; its webhook arrived %s after it completed; %d status requests",
		f.NumPages, done.Sub(sent).Round(time.Millisecond), late.Round(time.Millisecond), asked)
	if late > 2*time.Second {
		t.Errorf("webhook %s after the fax completed; want within 2 s with interval 30s", late)
	}
	// About four requests per page once its pace is known, a few more before; each request
	// at least minPollGap (250 ms) apart.
	if limit := int(done.Sub(sent)/(250*time.Millisecond)) + 3; asked > limit {
		t.Errorf("%d status requests for one fax over %s; want at most %d", asked, done.Sub(sent), limit)
	}
}

// With 1,000 faxes in flight and max_rate 50, the fax service never gets more than 50 status
// requests a second (plus one second's burst at the start), though each fax alone would be
// asked about four times a second.
func TestAdaptivePollingCapsTheRate(t *testing.T) {
	const faxes, rate = 1000, 50
	// Tick 1 h: no fax moves on during the test, so every one stays in flight.
	e := newEnvIn(t, faxapp.Config{Tick: time.Hour, Seed: 12}, nil,
		adaptivePoll("1s", fmt.Sprintf("max_rate %d\n\t\t\tconcurrency 16", rate)), "")
	ctx := ctxT(t, 120*time.Second)
	pdf := faxapp.PDF(1)
	err := harness.ForEach(ctx, faxes, 8, func(int) error {
		_, err := e.client.Send(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: pdf})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	time.Sleep(5 * time.Second)
	var all []time.Time
	for _, ts := range e.files.statusRequests() {
		all = append(all, ts...)
	}
	slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
	if len(all) == 0 {
		t.Fatal("no status request at all")
	}
	// The most requests in any one-second window, over the whole run.
	most := 0
	for i, j := 0, 0; j < len(all); j++ {
		for all[j].Sub(all[i]) >= time.Second {
			i++
		}
		most = max(most, j-i+1)
	}
	// The steady state, after the first second's burst: requests per second.
	var steady int
	for _, ts := range all {
		if ts.After(start) && ts.Before(start.Add(4*time.Second)) {
			steady++
		}
	}
	t.Logf("%d status requests in all; at most %d in one second; %.0f/s in the 4 s after the sends", len(all), most, float64(steady)/4)
	if most > 2*rate+5 {
		t.Errorf("%d status requests in one second; want at most %d (max_rate %d, a second's burst)", most, 2*rate, rate)
	}
	if float64(steady)/4 > rate*1.1 {
		t.Errorf("%.0f status requests a second; want at most max_rate %d", float64(steady)/4, rate)
	}
	if float64(steady)/4 < rate*0.5 {
		t.Errorf("only %.0f status requests a second with %d faxes due; the cap is %d", float64(steady)/4, faxes, rate)
	}
}
