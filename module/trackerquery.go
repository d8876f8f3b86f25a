package module

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/faxhook/caddy-faxhook/queue"
)

// The tracker's queries: what the admin API and the poller read of the tracker's records. They
// are the only readers of the tracker's key space outside tracker.go, so the layout of that space
// (prefixFax, prefixLive, prefixNumber) can change without them.

// fax returns the tracked fax with that id and whether it is still in flight (on the poller's
// work list); queue.ErrNotFound (wrapped) if faxhook never heard of it.
func (t *tracker) fax(id int64) (rec trackedFax, inFlight bool, err error) {
	err = t.store.View(func(tx queue.Tx) error {
		v, err := tx.State(faxKey(id))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decoding tracked fax %d: %w", id, err)
		}
		_, err = tx.State(liveKey(id))
		switch {
		case err == nil:
			inFlight = true
		case !errors.Is(err, queue.ErrNotFound):
			return fmt.Errorf("reading whether fax %d is in flight: %w", id, err)
		}
		return nil
	})
	return rec, inFlight, err
}

// faxPage returns up to limit tracked faxes in storage order, starting after the fax whose
// cursor is after (empty: from the first), and the cursor of the last one returned when more
// follow (empty when the page is the last).
func (t *tracker) faxPage(after string, limit int) (recs []trackedFax, next string, err error) {
	from := ""
	if after != "" {
		from = prefixFax + after
	}
	err = t.store.View(func(tx queue.Tx) error {
		recs, next = recs[:0], ""
		var ferr error
		last := ""
		err := tx.States(prefixFax, func(key string, v []byte) bool {
			if from != "" && key <= from {
				return true
			}
			if len(recs) == limit {
				next = strings.TrimPrefix(last, prefixFax)
				return false
			}
			var rec trackedFax
			if err := json.Unmarshal(v, &rec); err != nil {
				ferr = fmt.Errorf("decoding tracked fax %s: %w", key, err)
				return false
			}
			recs = append(recs, rec)
			last = key
			return true
		})
		if err != nil {
			return err
		}
		return ferr
	})
	return recs, next, err
}

// liveFax is one fax on the poller's work list: its id, and the id the fax service spells it
// with (the same, unless a mapping derived the id from a text one).
type liveFax struct{ id, upstream, account string }

// liveValue is the value of a fax's live record: the upstream id ("" when it is the decimal
// id), then, for a fax of a configured account, a NUL and the account's API key (which the
// poller's requests about the fax authenticate with).
func liveValue(upstreamID, account string) []byte {
	if account == "" {
		return []byte(upstreamID)
	}
	return []byte(upstreamID + "\x00" + account)
}

// live returns the faxes still in flight: the poller's work list.
func (t *tracker) live() ([]liveFax, error) {
	var faxes []liveFax
	err := t.store.View(func(tx queue.Tx) error {
		faxes = faxes[:0]
		return tx.States(prefixLive, func(key string, v []byte) bool {
			id := strings.TrimPrefix(key, prefixLive)
			uid, account, _ := strings.Cut(string(v), "\x00")
			faxes = append(faxes, liveFax{id: id, upstream: cmp.Or(uid, id), account: account})
			return true
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing faxes in flight: %w", err)
	}
	return faxes, nil
}

// forgetLive takes the fax with that id off the poller's work list (the fax service no longer
// knows it).
func (t *tracker) forgetLive(id string) error {
	return t.store.Update(func(tx queue.Tx) error { return tx.DeleteState(prefixLive + id) })
}

// counts returns how many faxes the tracker knows and how many of them are in flight.
//
// Cost: one pass over the tracker's fax and live records; it runs on GET /faxhook/stats only.
func (t *tracker) counts() (tracked, live int, err error) {
	err = t.store.View(func(tx queue.Tx) error {
		tracked, live = 0, 0
		if err := tx.States(prefixFax, func(string, []byte) bool { tracked++; return true }); err != nil {
			return err
		}
		return tx.States(prefixLive, func(string, []byte) bool { live++; return true })
	})
	return tracked, live, err
}
