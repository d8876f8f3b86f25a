//go:build unix

package pgstore_test

import (
	"context"
	"os"
	"testing"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/pgstore"
	"github.com/faxhook/caddy-faxhook/queue/pgstore/pgtest"
	"github.com/faxhook/caddy-faxhook/queue/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// open opens a store on a new database of the test server.
func open(t testing.TB, opts pgstore.Options) *pgstore.Store {
	t.Helper()
	dsn := pgtest.Start(t)
	st, err := pgstore.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The PostgreSQL store passes the Store conformance suite.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) queue.Store { return open(t, pgstore.Options{}) })
}
