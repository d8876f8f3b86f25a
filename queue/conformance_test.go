package queue_test

import (
	"testing"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/storetest"
)

// The Badger store passes the Store conformance suite.
func TestBadgerConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) queue.Store {
		st, err := queue.OpenBadger(t.TempDir(), queue.BadgerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}
