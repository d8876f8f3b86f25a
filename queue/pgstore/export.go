package pgstore

import (
	"github.com/faxhook/caddy-faxhook/queue"
)

// EnqueueAll enqueues jobs in tx, reporting for each whether it was new, as Tx.Enqueue does
// one by one. In a transaction of this store it takes one round trip for all of them, where
// Enqueue takes one each (Enqueue must answer before it returns); in any other transaction it
// calls Enqueue for each.
func EnqueueAll(tx queue.Tx, jobs []*queue.Job) ([]bool, error) {
	if t, ok := tx.(interface {
		EnqueueAll([]*queue.Job) ([]bool, error)
	}); ok {
		return t.EnqueueAll(jobs)
	}
	ok := make([]bool, len(jobs))
	for i, j := range jobs {
		var err error
		if ok[i], err = tx.Enqueue(j); err != nil {
			return nil, err
		}
	}
	return ok, nil
}
