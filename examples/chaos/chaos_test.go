package chaos

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/harness"
)

// TestKillRestartLosesNothing kills Caddy five times while 200 faxes go through it: every fax
// whose send succeeded must get its verified webhook at the URL it asked for.
func TestKillRestartLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy six times")
	}
	bin, err := harness.CaddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	var log strings.Builder
	rep, err := Run(ctx, Options{
		CaddyBinary: bin,
		Faxes:       200,
		Kills:       5,
		Seed:        1,
		Concurrency: 8,
		Tick:        20 * time.Millisecond,
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
	if rep.Kills != 5 {
		t.Errorf("%d kills, want 5", rep.Kills)
	}
	if len(rep.Expected) != 200 {
		t.Errorf("%d faxes expected, want 200", len(rep.Expected))
	}
	if len(rep.Lost) != 0 {
		t.Errorf("%d webhooks lost: %v", len(rep.Lost), rep.Lost)
	}
	// The handler commits a send's callback_url before the client gets the fax id, so a kill can
	// never make a webhook fall back to the global sent_url.
	if len(rep.Misrouted) != 0 {
		t.Errorf("%d callback_url webhooks went to the sent_url after a kill: %v", len(rep.Misrouted), rep.Misrouted)
	}
	if rep.Unverified != 0 {
		t.Errorf("%d webhook requests did not verify", rep.Unverified)
	}
	if t.Failed() {
		t.Logf("caddy log: %s/caddy/caddy.log", rep.Dir)
	}
}
