package main

import (
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/harness"
)

// The README's demo command works: every expected webhook arrives, signed and verified (run
// fails otherwise), for the main demo and for each shipped profile's.
func TestDemo(t *testing.T) {
	bin, err := harness.CaddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("main", func(t *testing.T) {
		if err := run(bin, 90*time.Second, false, false); err != nil {
			t.Fatal(err)
		}
	})
	for _, name := range []string{"sinch_v3", "telnyx", "twilio_fax"} {
		t.Run(name, func(t *testing.T) {
			if err := runProfile(bin, name, 60*time.Second, false); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := runProfile(bin, "phaxio_v9", time.Second, false); err == nil {
		t.Error("an unknown profile: no error")
	}
}
