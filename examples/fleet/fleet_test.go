package fleet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/harness"
)

// TestFleetChaos kills instances of a three-Caddy fleet twice while 30 faxes go through random
// instances: every fax whose send succeeded must get exactly one fax_completed event, at the URL
// it asked for, in order after its inflight events.
func TestFleetChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and Caddy five times")
	}
	bin, err := harness.CaddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	var log strings.Builder
	rep, err := Run(ctx, Options{
		CaddyBinary: bin,
		Faxes:       30,
		Kills:       2,
		Seed:        1,
		Inflight:    true,
		Drain:       60 * time.Second,
		Dir:         t.TempDir(),
		Log:         &log,
	})
	var sum strings.Builder
	rep.Print(&sum)
	t.Logf("\n%s%s", log.String(), sum.String())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kills != 2 || len(rep.KillsOf) != 2 {
		t.Errorf("%d kills of %d instances, want 2 of 2", rep.Kills, len(rep.KillsOf))
	}
	if len(rep.Expected) != 30 {
		t.Errorf("%d faxes expected, want 30", len(rep.Expected))
	}
	if len(rep.Lost) != 0 {
		t.Errorf("%d webhooks lost: %v", len(rep.Lost), rep.Lost)
	}
	if len(rep.DuplicateEvents) != 0 {
		t.Errorf("%d faxes got one state change as two events: %v", len(rep.DuplicateEvents), rep.DuplicateEvents)
	}
	if len(rep.OutOfOrder) != 0 {
		t.Errorf("%d faxes got their events out of order: %v", len(rep.OutOfOrder), rep.OutOfOrder)
	}
	if len(rep.Misrouted) != 0 {
		t.Errorf("%d faxes got an event at another URL than theirs: %v", len(rep.Misrouted), rep.Misrouted)
	}
	if rep.Unverified != 0 || rep.NoEventID != 0 {
		t.Errorf("%d webhook requests did not verify, %d had no event id", rep.Unverified, rep.NoEventID)
	}
	if rep.Unfinished != 0 {
		t.Errorf("the queue holds %d unfinished jobs at the end, want 0", rep.Unfinished)
	}
	if t.Failed() {
		logTails(t, rep.Dir)
	}
}

// TestFleetFailover kills the instance that leads the poller while five faxes no client reads
// are under way: another instance must take the lead within TakeoverBound and deliver every
// fax's webhook within the bound.
func TestFleetFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and Caddy three times")
	}
	bin, err := harness.CaddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var log strings.Builder
	rep, err := Failover(ctx, Options{
		CaddyBinary: bin,
		Faxes:       5,
		Seed:        1,
		Drain:       30 * time.Second,
		Dir:         t.TempDir(),
		Log:         &log,
	})
	var sum strings.Builder
	rep.Print(&sum)
	t.Logf("\n%s%s", log.String(), sum.String())
	if err != nil {
		t.Fatal(err)
	}
	if rep.NewLeader == "" || rep.NewLeader == rep.Leader {
		t.Errorf("no other instance took the lead from %s", rep.Leader)
	} else if rep.Takeover > TakeoverBound {
		t.Errorf("instance %s took the lead %s after the kill, bound %s", rep.NewLeader, rep.Takeover, TakeoverBound)
	}
	if len(rep.Lost) != 0 || len(rep.Late) != 0 {
		t.Errorf("webhooks lost %v, late (over %s) %v", rep.Lost, rep.Bound, rep.Late)
	}
	if len(rep.DuplicateEvents) != 0 || len(rep.Misrouted) != 0 || rep.Unverified != 0 {
		t.Errorf("duplicate events %v, misrouted %v, %d unverified", rep.DuplicateEvents, rep.Misrouted, rep.Unverified)
	}
	if rep.FinalBeforeKill != 0 {
		t.Logf("%d faxes were final before the kill: the machine was slow; they did not need the new leader", rep.FinalBeforeKill)
	}
	if t.Failed() {
		logTails(t, rep.Dir)
	}
}

// logTails logs the end of each instance's log under dir, which the test removes when it ends:
// faxhook's lines and warnings, not the admin API's requests the run makes.
func logTails(t *testing.T, dir string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "caddy.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		var lines []string
		for line := range strings.Lines(string(b)) {
			if strings.Contains(line, `"logger":"faxhook`) || !strings.Contains(line, `"level":"info"`) {
				lines = append(lines, strings.TrimRight(line, "\n"))
			}
		}
		t.Logf("%s (last 30 lines of faxhook and warnings):\n%s", l, strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}
