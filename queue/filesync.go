package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// fileSyncer makes a Badger database's commits durable on request. The database runs without
// Badger's SyncWrites, which msyncs the whole write-ahead log after every transaction, the
// dispatcher's leases and outcomes included; at-least-once delivery does not need those on disk
// (see Store.UpdateLazy). Instead, after a commit that must survive power loss, sync fsyncs every
// file that can hold a recent commit: the memtables' write-ahead logs (*.mem), a memtable being
// flushed included, and the value log (*.vlog). A file Badger removed meanwhile needs none: a
// flushed memtable's table file is synced by Badger before its log is removed. The directory is
// fsynced too when files came since the last sync, so that a new log's name survives.
//
// Concurrent callers share syncs: a caller returns once a sync that began after its request
// completed, so that one round of fsyncs serves every commit made before it began.
type fileSyncer struct {
	dir       string
	requested atomic.Uint64 // requests made so far

	mu    sync.Mutex
	done  uint64              // requests covered by the last completed sync
	files map[string]*os.File // open log files by name
	runs  int                 // syncs run so far
}

func newFileSyncer(dir string) *fileSyncer {
	return &fileSyncer{dir: dir, files: map[string]*os.File{}}
}

// sync returns once every commit made before it was called is on disk.
func (s *fileSyncer) sync() error {
	mine := s.requested.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done >= mine {
		return nil // a sync that began after this request completed meanwhile
	}
	covered := s.requested.Load()
	s.runs++
	if err := s.syncFiles(); err != nil {
		return err
	}
	s.done = covered
	return nil
}

// isLogFile reports whether name is a write-ahead or value log file of Badger.
func isLogFile(name string) bool {
	return strings.HasSuffix(name, ".mem") || strings.HasSuffix(name, ".vlog")
}

func (s *fileSyncer) syncFiles() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("listing %s to sync it: %w", s.dir, err)
	}
	present := make(map[string]bool, len(entries))
	added := false
	for _, e := range entries {
		name := e.Name()
		if !isLogFile(name) {
			continue
		}
		f := s.files[name]
		if f == nil {
			f, err = os.Open(filepath.Join(s.dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing
			}
			if err != nil {
				return fmt.Errorf("opening %s to sync it: %w", name, err)
			}
			s.files[name], added = f, true
		}
		present[name] = true
		if err := f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", filepath.Join(s.dir, name), err)
		}
	}
	for name, f := range s.files {
		if !present[name] {
			f.Close()
			delete(s.files, name)
		}
	}
	if added {
		d, err := os.Open(s.dir)
		if err != nil {
			return fmt.Errorf("opening %s to sync it: %w", s.dir, err)
		}
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("syncing directory %s: %w", s.dir, err)
		}
	}
	return nil
}

// close closes the files kept open.
func (s *fileSyncer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, f := range s.files {
		f.Close()
		delete(s.files, name)
	}
}
