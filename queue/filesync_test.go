package queue

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
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
				if logKind(e.Name()) != "" {
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

// Badger appends only to its newest write-ahead log and newest value log: a sync fsyncs those,
// the logs that appeared since the last sync, and the logs that were the newest at the last sync
// (written to until Badger moved on), not the older ones again.
func TestSyncerFsyncsTheLogsThatMayHaveChanged(t *testing.T) {
	dir := t.TempDir()
	touch := func(names ...string) { touchFiles(t, dir, names...) }
	s := newFileSyncer(dir)
	defer s.close()
	step := func(want ...string) { t.Helper(); syncExpecting(t, s, want...) }
	touch("00001.mem", "000001.vlog", "MANIFEST", "000001.sst")
	step("00001.mem", "000001.vlog")
	step("00001.mem", "000001.vlog")
	touch("00002.mem") // memtable 1 is full and being flushed
	step("00001.mem", "00002.mem", "000001.vlog")
	step("00002.mem", "000001.vlog")
	touch("000002.vlog", "00003.mem")
	if err := os.Remove(dir + "/00001.mem"); err != nil { // flushed
		t.Fatal(err)
	}
	step("00002.mem", "00003.mem", "000001.vlog", "000002.vlog")
	step("00003.mem", "000002.vlog")
	touch("100000.mem") // numbers outgrow the padding
	step("00003.mem", "100000.mem", "000002.vlog")
	step("100000.mem", "000002.vlog")
	if _, open := s.files["00001.mem"]; open {
		t.Errorf("the removed log is still open")
	}
}

// While the directory's modification time shows that no file came or went since the last
// listing, a sync fsyncs the newest logs without listing the directory again; a new log changes
// the time and is found.
func TestSyncerListsTheDirectoryOnlyAfterItChanged(t *testing.T) {
	dir := t.TempDir()
	touchFiles(t, dir, "00001.mem", "00002.mem", "000001.vlog", "000001.sst")
	settled := time.Now().Add(-time.Minute)
	if err := os.Chtimes(dir, settled, settled); err != nil {
		t.Fatal(err)
	}
	s := newFileSyncer(dir)
	defer s.close()
	step := func(want ...string) { t.Helper(); syncExpecting(t, s, want...) }
	step("00001.mem", "00002.mem", "000001.vlog") // first sync: every log is new
	listedAt := s.listedAt
	step("00002.mem", "000001.vlog")
	step("00002.mem", "000001.vlog")
	if s.listedAt != listedAt {
		t.Errorf("the unchanged directory was listed again")
	}
	touchFiles(t, dir, "00003.mem")
	step("00002.mem", "00003.mem", "000001.vlog")
	if s.listedAt == listedAt {
		t.Errorf("the changed directory was not listed again")
	}
}

// touchFiles creates small files with the given names in dir.
func touchFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := os.WriteFile(dir+"/"+n, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// syncExpecting runs a sync and checks that it fsynced exactly the files want.
func syncExpecting(t *testing.T, s *fileSyncer, want ...string) {
	t.Helper()
	if err := s.sync(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	if got := slices.Sorted(slices.Values(s.last)); !slices.Equal(got, want) {
		t.Fatalf("synced %v, want %v", got, want)
	}
}
