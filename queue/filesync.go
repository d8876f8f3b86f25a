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
	"time"
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
// Listing the directory is skipped while its modification time shows that no file came or went
// since the last listing.
//
// Badger's public DB.Sync (v4.9.6) cannot replace it, because it does not give the same
// guarantee: it msyncs only the active memtable's write-ahead log and the newest value log.
//   - A memtable that filled up between a commit and the DB.Sync that follows (another writer's
//     commit, or the next request in the same write batch, moves it to the flush queue) keeps
//     its log unsynced until its flush has written a table file, which can take a while under
//     load; neither the move (DB.ensureRoomForWrite) nor DB.Sync syncs it, and a power loss
//     meanwhile undoes a commit whose Update had reported it on disk.
//   - Badger fsyncs no directory when it creates a log (z.OpenMmapFile syncs the directory only
//     for files it creates empty, and logs are created at full size), so a new log's name may
//     not survive a power loss even when its contents were synced.
//
// A value log that fills up is synced by Badger itself (valueLog.write → logFile.doneWriting →
// z.MmapFile.Truncate msyncs before it truncates), but syncing it again here is cheap: nothing is
// dirty. Should Badger's DB.Sync cover the logs of memtables awaiting their flush and sync the
// directory of new logs, fileSyncer can give way to it.
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
	// listed is set once a listing of the directory completed, when it had listedMtime as its
	// modification time, read at listedAt just before the listing.
	listed      bool
	listedMtime time.Time
	listedAt    time.Time
	runs        int      // syncs run so far
	last        []string // the files the last sync fsynced, for tests
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
		// Start over: the next sync lists the directory and takes every log for new.
		s.closeFiles()
		s.newest, s.listed = map[string]string{}, false
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

// settledAfter is how old a directory's modification time must be, when it is read, for a later
// change of the directory to be sure to change it: far longer than the granularity of file
// system timestamps.
const settledAfter = 2 * time.Second

func (s *fileSyncer) syncFiles() error {
	st, err := os.Stat(s.dir)
	if err != nil {
		return fmt.Errorf("checking %s to sync it: %w", s.dir, err)
	}
	mtime := st.ModTime()
	if s.listed && mtime.Equal(s.listedMtime) && s.listedMtime.Before(s.listedAt.Add(-settledAfter)) {
		// No file came or went since the last listing (a directory of hundreds of table files
		// takes a third of a millisecond to list): the newest logs are the same.
		return s.syncNewest()
	}
	s.listed, s.listedMtime, s.listedAt = false, mtime, time.Now()
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
	s.newest, s.last, s.listed = newest, synced, true
	return nil
}

// syncNewest fsyncs the newest log of each kind, as the last listing found them.
func (s *fileSyncer) syncNewest() error {
	var synced []string
	for _, name := range s.newest {
		f := s.files[name]
		if f == nil { // not expected: the listing found it gone; list again
			s.listed = false
			return s.syncFiles()
		}
		if err := datasync(f); err != nil {
			return fmt.Errorf("syncing %s: %w", filepath.Join(s.dir, name), err)
		}
		synced = append(synced, name)
	}
	s.last = synced
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
