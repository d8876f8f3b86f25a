//go:build unix

package pgstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/pgstore"
)

// A claim passes over the due jobs another transaction is claiming at that moment instead of
// waiting for it, and claims each job once: two instances claiming at once split the due jobs
// between them.
func TestClaimDueSkipsLockedJobs(t *testing.T) {
	s := open(t, pgstore.Options{})
	mustUpdate(t, s, func(tx queue.Tx) error {
		for i := range 6 {
			if _, err := tx.Enqueue(job(fmt.Sprint("j", i), "", t0.Add(time.Duration(i)*time.Second))); err != nil {
				return err
			}
		}
		return nil
	})
	dest := queue.Destination("https://a.example/h")
	now, until := t0.Add(time.Minute), t0.Add(time.Hour)
	holding, release := make(chan []*queue.Job), make(chan struct{})
	go func() {
		s.Update(func(tx queue.Tx) error {
			got, err := queue.ClaimDue(tx, []queue.Claim{{Dest: dest, Limit: 3, Token: "a/1"}}, now, nil, until)
			if err != nil {
				holding <- nil
				return err
			}
			holding <- got[0]
			<-release // hold the rows' locks, uncommitted
			return nil
		})
		close(holding)
	}()
	first := <-holding
	if len(first) != 3 || first[0].ID != "j0" || first[2].ID != "j2" {
		t.Fatalf("first claim: %v, want j0..j2", ids(first))
	}
	done := make(chan []*queue.Job, 1)
	go func() {
		var got [][]*queue.Job
		err := s.Update(func(tx queue.Tx) (err error) {
			got, err = queue.ClaimDue(tx, []queue.Claim{{Dest: dest, Limit: 6, Token: "b/1"}}, now, nil, until)
			return err
		})
		if err != nil {
			t.Error(err)
			done <- nil
			return
		}
		done <- got[0]
	}()
	select {
	case second := <-done:
		if fmt.Sprint(ids(second)) != "[j3 j4 j5]" {
			t.Errorf("second claim while the first holds its jobs: %v, want [j3 j4 j5]", ids(second))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second claim waited for the first instead of passing over its jobs")
	}
	close(release)
	<-holding
	var leases []string
	err := s.View(func(tx queue.Tx) error {
		for i := range 6 {
			j, err := tx.JobHead(fmt.Sprint("j", i))
			if err != nil {
				return err
			}
			leases = append(leases, j.Lease)
			if !j.DueAt.Equal(until) {
				t.Errorf("%s due %s after its claim, want %s", j.ID, j.DueAt, until)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(leases) != "[a/1 a/1 a/1 b/1 b/1 b/1]" {
		t.Errorf("leases = %v", leases)
	}
}

func ids(jobs []*queue.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}
