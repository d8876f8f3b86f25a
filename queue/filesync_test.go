package queue

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// With sync_writes, Update returns once the write-ahead and value logs are fsynced, all of them;
// UpdateLazy, which the dispatcher's rounds use, and Update without sync_writes never wait for the
// disk.
func TestUpdateSyncsEveryLogOnlyWhenAsked(t *testing.T) {
	for _, syncWrites := range []bool{true, false} {
		b, err := OpenBadger(t.TempDir(), BadgerOptions{SyncWrites: syncWrites})
		if err != nil {
			t.Fatal(err)
		}
		runs := func() int {
			b.syncer.mu.Lock()
			defer b.syncer.mu.Unlock()
			return b.syncer.runs
		}
		put := func(update func(func(Tx) error) error, key string) {
			t.Helper()
			// Values of 2 MB go to the value log, the rest to the write-ahead log.
			if err := update(func(tx Tx) error { return tx.PutState(key, []byte(strings.Repeat("x", 2<<20))) }); err != nil {
				t.Fatal(err)
			}
		}
		put(b.UpdateLazy, "lazy")
		if n := runs(); n != 0 {
			t.Errorf("sync_writes %v: UpdateLazy synced %d times", syncWrites, n)
		}
		put(b.Update, "durable")
		want := 0
		if syncWrites {
			want = 1
		}
		if n := runs(); n != want {
			t.Errorf("sync_writes %v: Update synced %d times, want %d", syncWrites, n, want)
		}
		if syncWrites {
			entries, err := os.ReadDir(b.Dir())
			if err != nil {
				t.Fatal(err)
			}
			var logs, synced []string
			for _, e := range entries {
				if isLogFile(e.Name()) {
					logs = append(logs, e.Name())
				}
			}
			b.syncer.mu.Lock()
			for name := range b.syncer.files {
				synced = append(synced, name)
			}
			b.syncer.mu.Unlock()
			slices.Sort(synced)
			if !slices.Equal(logs, synced) || !slices.ContainsFunc(logs, func(n string) bool { return strings.HasSuffix(n, ".vlog") }) ||
				!slices.ContainsFunc(logs, func(n string) bool { return strings.HasSuffix(n, ".mem") }) {
				t.Errorf("synced %v, want every log file of %v", synced, logs)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
