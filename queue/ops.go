package queue

import (
	"errors"
	"fmt"
	"time"
)

// Replay puts one job back to pending, due at now, whatever its state (a dead job gets a fresh
// ladder: its attempt log is kept and the ladder counts attempts made since the replay). A
// pending job already due is left as it is, which covers a job the dispatcher leased (leases are
// not stored); callers that must refuse a job under way check Dispatcher.Leases and answer
// ErrBusy.
func Replay(tx Tx, id string, now time.Time) (*Job, error) {
	j, err := tx.Job(id)
	if err != nil {
		return nil, fmt.Errorf("replaying job %s: %w", id, err)
	}
	if j.State == StatePending && !j.DueAt.After(now) {
		return j, nil
	}
	if Finished(j.State) {
		j.ReplayedAt = append(j.ReplayedAt, now)
		j.LadderBase = len(j.Attempts)
	}
	j.State, j.DueAt, j.FinishedAt = StatePending, now, time.Time{}
	if err := tx.PutJobHead(j); err != nil {
		return nil, fmt.Errorf("replaying job %s: %w", id, err)
	}
	return j, nil
}

// ErrBusy is returned when a job cannot be changed because an attempt is under way.
var ErrBusy = errors.New("an attempt is under way")

// ReplayDead puts every job that died at or after since back to pending, due at now, and returns
// how many it replayed.
func ReplayDead(s Store, since, now time.Time) (int, error) {
	var ids []string
	err := s.View(func(tx Tx) error {
		return tx.FinishedHeads(StateDead, since, func(j *Job) bool { ids = append(ids, j.ID); return true })
	})
	if err != nil {
		return 0, fmt.Errorf("listing dead jobs: %w", err)
	}
	n := 0
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		err := s.Update(func(tx Tx) error {
			for _, id := range chunk {
				if _, err := Replay(tx, id, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return n, nil
}

// Purge deletes the jobs that finished in state (delivered or dead) before cutoff and returns
// how many it deleted. It works in transactions of 500 jobs, each listing resuming where the last
// one stopped, so that it never walks the entries it already deleted.
func Purge(s Store, state string, cutoff time.Time) (int, error) {
	n := 0
	var since time.Time
	for {
		var ids []string
		err := s.View(func(tx Tx) error {
			return tx.FinishedHeads(state, since, func(j *Job) bool {
				if !j.FinishedAt.Before(cutoff) || len(ids) == 500 {
					return false
				}
				ids = append(ids, j.ID)
				since = j.FinishedAt
				return true
			})
		})
		if err != nil {
			return n, fmt.Errorf("listing %s jobs to purge: %w", state, err)
		}
		if len(ids) == 0 {
			return n, nil
		}
		err = s.Update(func(tx Tx) error {
			for _, id := range ids {
				if err := tx.DeleteJob(id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("purging %s jobs: %w", state, err)
		}
		n += len(ids)
	}
}
