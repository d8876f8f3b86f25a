package qbench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	ChildMain() // case (c) re-executes the test binary as its child
	os.Exit(m.Run())
}

// A small run completes, prints every row, and leaves no temporary store behind. Its figures
// are not checked: they belong to the benchmark command, not to tests.
func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmark at a small size")
	}
	parent := t.TempDir()
	var progress bytes.Buffer
	rep, err := Run(context.Background(), Options{
		Duration: 100 * time.Millisecond, Rounds: 1, Jobs: 200, Pending: 2000,
		Rate: 100, LatencyDuration: time.Second, HangTimeout: 500 * time.Millisecond,
		Dir: parent, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Logf("\n%s", out.String())
	want := []string{
		"enqueue, 1 job/txn", "enqueue, 64 job/txn", "signed deliveries/s",
		"peak RSS, 2,000 pending", "restart → first delivery", "healthy p99", "p99 enqueue-to-delivery",
	}
	for _, w := range want {
		if n := strings.Count(out.String(), w); n != 2 {
			t.Errorf("%q appears in %d rows, want one per sync_writes setting", w, n)
		}
	}
	if len(rep.Rows) != 14 {
		t.Errorf("%d rows, want 14", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		if !(r.Faxhook > 0) {
			t.Errorf("row %s %q (sync %v) has no figure", r.Case, r.Measure, r.Sync)
		}
	}
	left, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("temporary stores left behind: %v", left)
	}
}
