package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/faxhook/caddy-faxhook/examples/qbench"
)

func TestGoalRows(t *testing.T) {
	r := queueRow(qbench.Row{Case: "b", Measure: "signed deliveries/s vs plain client", Sync: true, Faxhook: 700, Baseline: 1000, Ratio: 0.7, Goal: "ratio ≥ 0.7", Met: true})
	if r.Measured != "0.70" || r.Verdict != "met" || !strings.Contains(r.Goal, "sync_writes on") || !strings.HasSuffix(r.Command, "-cases b") {
		t.Errorf("queue row %+v", r)
	}
	r = queueRow(qbench.Row{Case: "c", Measure: "peak RSS (MB)", Faxhook: 320, Baseline: math.NaN(), Ratio: math.NaN(), Goal: "≤ 300"})
	if r.Measured != "320.00" || r.Verdict != "MISSED" {
		t.Errorf("queue row without a baseline %+v", r)
	}
	rep := GoalReport{Rows: []GoalRow{{Goal: "g1", Verdict: "met"}, {Goal: "g2", Verdict: "SUSPICIOUS"}}, GCBudget: "GOGC=off GOMEMLIMIT=256MiB"}
	if rep.Met() {
		t.Error("a SUSPICIOUS row counted as met")
	}
	var out bytes.Buffer
	rep.Print(&out)
	for _, w := range []string{"GOGC=off GOMEMLIMIT=256MiB", "g1", "SUSPICIOUS"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("goal table lacks %q:\n%s", w, out.String())
		}
	}
}
