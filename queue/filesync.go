package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// fileSyncer makes a Badger database's commits durable on request. The database runs without
// Badger's SyncWrites, which msyncs the whole write-ahead log after every transaction, the
// dispatcher's leases and outcomes included; at-least-once delivery does not need those on disk
// (see Store.UpdateLazy). Instead, after a commit that must survive power loss, sync fsyncs the
// files that can hold a commit not yet synced: of the memtables' write-ahead logs (*.mem) and of
// the value logs (*.vlog), Badger appends only to the newest (the highest number), so those are
// the newest of each kind, any that appeared since the last sync, and those that were the newest
// at the last sync (a memtable full since then, being flushed, or a value log rotated). A file
// Badger removed meanwhile needs none: a flushed memtable's table file is synced by Badger before
// its log is removed. The directory is fsynced too when files appeared, so that a new log's name
// survives.
//
// Concurrent callers share syncs: a caller returns once a sync that began after its request
// completed, so that one round of fsyncs serves every commit made before it began.
type fileSyncer struct {
	dir       string
	requested atomic.Uint64 // requests made so far

	mu    sync.Mutex
	done  uint64              // requests covered by the last completed sync
	files map[string]*os.File // open log files by name
	// newest holds, per kind (".mem", ".vlog"), the name of the newest log of the last sync.
	newest map[string]string
	runs   int      // syncs run so far
	last   []string // the files the last sync fsynced, for tests
}

func newFileSyncer(dir string) *fileSyncer {
	return &fileSyncer{dir: dir, files: map[string]*os.File{}, newest: map[string]string{}}
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
		// Start over: the next sync takes every log for new and fsyncs it.
		s.closeFiles()
		s.newest = map[string]string{}
		return err
	}
	s.done = covered
	return nil
}

// logKind returns ".mem" or ".vlog" for a write-ahead or value log file of Badger, "" for others.
func logKind(name string) string {
	for _, kind := range []string{".mem", ".vlog"} {
		if strings.HasSuffix(name, kind) {
			return kind
		}
	}
	return ""
}

// logNumber returns the file number of a log name ("00042.mem" → 42), 0 for "" or a name that
// does not start with one. Names are zero-padded to a minimum width only, so they do not sort by
// number once the numbers outgrow it.
func logNumber(name string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSuffix(name, logKind(name)), 10, 64)
	return n
}

func (s *fileSyncer) syncFiles() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("listing %s to sync it: %w", s.dir, err)
	}
	newest := map[string]string{}
	for _, e := range entries {
		if kind := logKind(e.Name()); kind != "" && logNumber(e.Name()) >= logNumber(newest[kind]) {
			newest[kind] = e.Name()
		}
	}
	present := make(map[string]bool, len(entries))
	added := false
	var synced []string
	for _, e := range entries {
		name := e.Name()
		kind := logKind(name)
		if kind == "" {
			continue
		}
		present[name] = true
		f := s.files[name]
		if f != nil && name != newest[kind] && name != s.newest[kind] {
			continue // synced when Badger was writing to a newer log already
		}
		if f == nil {
			f, err = os.Open(filepath.Join(s.dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				delete(present, name)
				continue // removed since the listing
			}
			if err != nil {
				return fmt.Errorf("opening %s to sync it: %w", name, err)
			}
			s.files[name], added = f, true
		}
		if err := datasync(f); err != nil {
			return fmt.Errorf("syncing %s: %w", filepath.Join(s.dir, name), err)
		}
		synced = append(synced, name)
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
	s.newest, s.last = newest, synced
	return nil
}

// close closes the files kept open.
func (s *fileSyncer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeFiles()
}

func (s *fileSyncer) closeFiles() {
	for name, f := range s.files {
		f.Close()
		delete(s.files, name)
	}
}
