package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/module/profile"
)

// TestSmallMemoryRun runs the memory mode with small faxes and checks that every case ended
// with its one fax_completed webhook and that faxhook's caps held: the two faxes with more
// recipients than max_recipients (default 1000) got no inflight webhook, and the 150-recipient
// fax's observations were capped. Memory figures are not asserted.
func TestSmallMemoryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four Caddy processes")
	}
	bin, err := harness.CaddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	rep, err := RunMemory(ctx, MemOptions{
		CaddyBinary: bin, InflightRecipients: 150, SendRecipients: 1200, ResponseRecipients: 1500,
		Timeout: 30 * time.Second, MaxRSS: 1 << 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(AllMemCases) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(AllMemCases))
	}
	for i, r := range rep.Results {
		if r.Case != AllMemCases[i] {
			t.Errorf("row %d is %s, want %s", i, r.Case, AllMemCases[i])
		}
		if r.Outcome != OutcomeCompleted || r.Completed != 1 || r.PeakRSS == 0 {
			t.Errorf("%s: %s with %d fax_completed webhooks, peak RSS %d", r.Case, r.Outcome, r.Completed, r.PeakRSS)
		}
		capped := r.Capped["recipients"] + r.Capped["events"] + r.Capped["bytes"]
		switch r.Case {
		case MemBaseline:
			if r.Inflight != 3 || capped != 0 || r.Ratio != 1 {
				t.Errorf("baseline: %d inflight webhooks (want 3), capped %v, ratio %v", r.Inflight, r.Capped, r.Ratio)
			}
		case MemInflight:
			if capped < 1 || r.Warnings < 1 {
				t.Errorf("150-recipient fax: capped %v, %d warnings; want its observations capped", r.Capped, r.Warnings)
			}
		case MemSend, MemResponse:
			if r.Inflight != 0 || r.Capped["recipients"] < 1 || r.Warnings < 1 {
				t.Errorf("%s: %d inflight webhooks, capped %v, %d warnings; want none, capped for recipients", r.Case, r.Inflight, r.Capped, r.Warnings)
			}
		}
	}
	var out bytes.Buffer
	if err := rep.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, c := range AllMemCases {
		if !strings.Contains(out.String(), "\n"+string(c)+" ") {
			t.Errorf("table lacks case %s:\n%s", c, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}

// TestBigFaxAnswer checks the response case's answers: about 1 MB for 21,000 recipients (under
// the default max_capture of 1 MiB, so Caddy observes them), fax objects faxhook's extractor
// reads, with every recipient.
func TestBigFaxAnswer(t *testing.T) {
	u := newBigFaxUpstream(21000)
	if n := u.largest(); n < 900_000 || n >= 1<<20 {
		t.Errorf("largest answer is %d bytes, want about 1 MB and under 1 MiB", n)
	}
	for name, body := range map[string][]byte{"in progress": u.inProgress, "completed": u.completed} {
		objs, err := profile.Phaxio(body)
		if err != nil || len(objs) != 1 || objs[0].Fax.ID != bigFaxID || len(objs[0].Fax.Recipients) != 21000 {
			t.Errorf("%s: %d objects, err %v", name, len(objs), err)
			continue
		}
		if name == "in progress" && len(objs[0].CurrentPage) != 21000 {
			t.Errorf("in progress: %d recipients with a current page", len(objs[0].CurrentPage))
		}
		if !json.Valid(body) {
			t.Errorf("%s: not JSON", name)
		}
	}
}

func TestParseMemCases(t *testing.T) {
	cs, err := ParseMemCases(" send, inflight ,send")
	if err != nil || len(cs) != 3 || cs[0] != MemBaseline || cs[1] != MemSend || cs[2] != MemInflight {
		t.Errorf("ParseMemCases = %v, %v", cs, err)
	}
	if _, err := ParseMemCases("inflight,huge"); err == nil {
		t.Error("case huge accepted")
	}
}
