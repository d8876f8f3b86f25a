package qbench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
)

// enqueueRun writes fax_completed jobs for d, batch jobs per transaction, through the queue
// (tx.Enqueue) or, for the baseline, as raw Badger sets of values of the same size, and returns
// the jobs written per second. It works in a fresh directory under parent, removed afterwards.
func enqueueRun(ctx context.Context, parent string, syncWrites, raw bool, batch int, d time.Duration) (float64, error) {
	dir, cleanup, err := tempDir(parent, "qbench-enqueue-")
	if err != nil {
		return 0, err
	}
	defer cleanup()
	const url = "https://hooks.example.com/fax"
	tmpl := makeJob(1, url, time.Now(), time.Now())
	value, err := json.Marshal(tmpl)
	if err != nil {
		return 0, fmt.Errorf("encoding the job template: %w", err)
	}

	var write func(first uint64) error
	var closeFn func() error
	if raw {
		db, err := badger.Open(rawOptions(dir, syncWrites))
		if err != nil {
			return 0, fmt.Errorf("opening raw Badger: %w", err)
		}
		closeFn = db.Close
		write = func(first uint64) error {
			return db.Update(func(txn *badger.Txn) error {
				for i := first; i < first+uint64(batch); i++ {
					if err := txn.Set([]byte("j/"+idOf(i)), value); err != nil {
						return err
					}
				}
				return nil
			})
		}
	} else {
		st, err := queue.OpenBadger(dir, queue.BadgerOptions{SyncWrites: syncWrites})
		if err != nil {
			return 0, err
		}
		closeFn = st.Close
		write = func(first uint64) error {
			now := time.Now()
			return st.Update(func(tx queue.Tx) error {
				for i := first; i < first+uint64(batch); i++ {
					j := *tmpl
					ev := render.Event{FaxID: int64(i), Type: fax.EventFaxCompleted}
					j.ID, j.EventID, j.Meta = idOf(i), ev.ID(), ev.Meta()
					j.Chain = strconv.FormatUint(i, 10) + "\x00" + url
					j.CreatedAt, j.DueAt = now, now
					if _, err := tx.Enqueue(&j); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	var n uint64
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		if err := write(n); err != nil {
			closeFn()
			return 0, fmt.Errorf("writing jobs %d..%d: %w", n, n+uint64(batch)-1, err)
		}
		n += uint64(batch)
	}
	rate := float64(n) / time.Since(start).Seconds()
	if err := closeFn(); err != nil {
		return 0, fmt.Errorf("closing: %w", err)
	}
	return rate, ctx.Err()
}
