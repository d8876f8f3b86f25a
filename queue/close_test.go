package queue

import (
	"os"
	"strings"
	"testing"
	"time"
)

// An operator who removes the storage directory while Caddy runs gets an error from the next
// synced write and from Close, which returns instead of hanging (Badger alone retries its last
// flush forever, and a Caddy reload or stop would hang with it).
func TestCloseReturnsWhenTheDirectoryWasRemoved(t *testing.T) {
	dir := t.TempDir() + "/store"
	b, err := OpenBadger(dir, BadgerOptions{SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(id string) error {
		return b.Update(func(tx Tx) error { _, err := tx.Enqueue(&Job{ID: id, URL: "http://x", DueAt: time.Now()}); return err })
	}
	if err := enqueue("a"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := enqueue("b"); err == nil || !strings.Contains(err.Error(), "not synced") {
		t.Errorf("a synced write after the removal: %v, want an error saying it is not on disk", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "removed while open") {
			t.Errorf("Close: %v, want an error saying the directory was removed", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Close did not return")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the removed directory is back after Close (%v)", err)
	}
}
