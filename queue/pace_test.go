package queue

import (
	"testing"
	"time"
)

// How far ahead a round leases a destination's jobs follows how many of them its attempts use
// up during a round: a destination whose attempts are quick gets up to sharedAhead×PerHost, a
// slow one no more than over a store of one process, and one whose attempts or sizes are not
// known yet neither.
func TestPaceReaches(t *testing.T) {
	var b paceBook
	if r := b.reaches(4); r != nil {
		t.Fatalf("before any round: %v, want none", r)
	}
	b.roundTook(5 * time.Millisecond)
	for range 3 {
		b.attempted("https://quick", 200*time.Microsecond)
		b.attempted("https://medium", 5*time.Millisecond)
		b.attempted("https://slow", time.Second)
	}
	b.attempted("https://unsized", time.Microsecond)
	b.leased([]leased{{dest: "https://quick", size: 3000}, {dest: "https://quick", size: 9000},
		{dest: "https://medium", size: 100}, {dest: "https://slow", size: 100}, {dest: "https://unattempted", size: 100}})
	r := b.reaches(4)
	if got := r["https://quick"]; got != (reach{jobs: sharedAhead * 4, size: 9000}) {
		t.Errorf("quick destination: %+v, want %d jobs of 9000 bytes", got, sharedAhead*4)
	}
	// 3 rounds of 4 attempts at once, one attempt a round: 12 ahead, 4 running.
	if got := r["https://medium"]; got.jobs != 16 {
		t.Errorf("medium destination: %+v, want 16 jobs", got)
	}
	for _, dest := range []string{"https://slow", "https://unsized", "https://unattempted"} {
		if got, ok := r[dest]; ok {
			t.Errorf("%s: %+v, want none (plainAhead×PerHost)", dest, got)
		}
	}
	// Sizes decay by half per round that leases smaller jobs, never below the largest leased.
	b.leased([]leased{{dest: "https://quick", size: 1000}})
	if got := b.reaches(4)["https://quick"].size; got != 4500 {
		t.Errorf("size after smaller jobs: %d, want 4500", got)
	}
}
