package queue

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// Jobs with files too big for the LSM tree leave their old versions in the value log; once the
// janitor purged them, the value log shrinks to about one file instead of growing with every
// job ever stored.
func TestJanitorReturnsValueLogSpace(t *testing.T) {
	defer func(size int64) { vlogFileSize = size }(vlogFileSize)
	vlogFileSize = 4 << 20
	b := openTestStore(t)
	b.deepGCFloor, b.deepGCStep = 0, vlogFileSize/2
	pdf := make([]byte, 1200<<10) // too big for the LSM tree: in the value log
	for i := range pdf {
		pdf[i] = byte(i * 7)
	}
	old := time.Now().Add(-30 * 24 * time.Hour)
	for i := range 20 { // the body is written once: 24 MB, six value-log files
		id := fmt.Sprintf("big%d", i)
		err := b.Update(func(tx Tx) error {
			if _, err := tx.Enqueue(&Job{ID: id, URL: "http://x", DueAt: old, Payload: Payload{Files: []File{{Name: "file", Data: pdf}}}}); err != nil {
				return err
			}
			j, err := tx.Job(id)
			if err != nil {
				return err
			}
			j.State, j.FinishedAt = StateDelivered, old
			return tx.PutJob(j)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	before := vlogFiles(t, b.dir)
	res := Sweep(b, JanitorOptions{}, time.Now())
	if res.Err != nil || res.Delivered != 20 {
		t.Fatalf("sweep: %+v", res)
	}
	// Writes go on while the memtables are flushed: they wait, they do not fail.
	stop, werr := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(werr)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := b.Update(func(tx Tx) error { return tx.PutState(fmt.Sprintf("k%d", i), []byte("v")) }); err != nil {
				werr <- err
				return
			}
		}
	}()
	err := b.CollectGarbage()
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("a write during the flush failed: %v", err)
	}
	// The file being written to stays; the others held nothing but purged jobs.
	if after := vlogFiles(t, b.dir); before < 5 || after != 1 {
		t.Fatalf("%d value-log files before the purge, %d after; want 1 after", before, after)
	}
}

func vlogFiles(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}
