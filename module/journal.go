package module

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/faxhook/caddy-faxhook/handler/extract"
)

// journalName is the send journal's file name inside the storage directory (Badger ignores
// files it does not know).
const journalName = "faxhook-sends.journal"

// journalTruncateAt is the size from which the journal is emptied once everything in it is
// recorded in the store.
const journalTruncateAt = 256 << 10

// maxJournalEntry bounds one entry; a longer length field marks a torn or corrupt tail.
const maxJournalEntry = 1 << 20

var journalCRC = crc32.MakeTable(crc32.Castagnoli)

// journalEntry is what a creating request told faxhook: the ids it created and their
// callback_url, or the phone numbers it provisioned. It is all a replay needs: the poller asks
// the fax service for the rest.
type journalEntry struct {
	FaxIDs       []int64          `json:"fax_ids,omitempty"`
	CallbackURLs []string         `json:"callback_urls,omitempty"`
	Numbers      []extract.Number `json:"numbers,omitempty"`
}

// observation turns a replayed entry back into what the tracker records.
func (e journalEntry) observation() *Observation {
	o := &Observation{CallbackURLs: e.CallbackURLs, Numbers: e.Numbers}
	for _, id := range e.FaxIDs {
		var obj extract.Object
		obj.Fax.ID = id
		o.Faxes = append(o.Faxes, obj)
	}
	return o
}

// journal is the send journal: an append-only file where a creating request's callback_url is
// written before the client gets the new fax id, so that a crash of Caddy before the store has
// recorded it cannot lose it. The store records it moments later, off the request path, in order
// with everything observed after it; entries are replayed into the store when the storage is
// opened, and the file is emptied whenever everything in it is recorded.
//
// A write reaches the operating system before append returns, which survives a crash of the
// process; the journal is not fsynced. What guards against a power loss is the store's own
// commit of the entry, fsynced with sync_writes, which follows within milliseconds: an fsync of
// the journal would only duplicate it.
type journal struct {
	mu          sync.Mutex
	f           *os.File
	size        int64
	outstanding int  // entries appended and not yet recorded in the store
	failed      bool // recording an entry failed: keep the file for the next replay
	closed      bool
}

// openJournal opens (creating if needed) the journal in dir and returns it with the entries a
// previous run left in it, oldest first. A torn or corrupt tail (a crash in mid-write) ends the
// entries and is cut off.
func openJournal(dir string) (*journal, []journalEntry, error) {
	path := filepath.Join(dir, journalName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the send journal: %w", err)
	}
	entries, good, err := readJournal(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reading the send journal %s: %w", path, err)
	}
	if st, err := f.Stat(); err == nil && st.Size() > good {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("cutting the torn tail of the send journal %s: %w", path, err)
		}
	}
	return &journal{f: f, size: good}, entries, nil
}

// readJournal decodes entries from the start of f until its end or the first frame that is
// incomplete or fails its checksum, and returns the offset where the valid frames end.
func readJournal(f *os.File) ([]journalEntry, int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	r := bufio.NewReader(f)
	var entries []journalEntry
	var good int64
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return entries, good, nil
			}
			return nil, 0, err
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n == 0 || n > maxJournalEntry {
			return entries, good, nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return entries, good, nil
			}
			return nil, 0, err
		}
		if crc32.Checksum(payload, journalCRC) != binary.LittleEndian.Uint32(hdr[4:]) {
			return entries, good, nil
		}
		var e journalEntry
		if err := json.Unmarshal(payload, &e); err != nil {
			return entries, good, nil
		}
		entries = append(entries, e)
		good += int64(len(hdr)) + int64(n)
	}
}

// entryOf returns the journal entry of an observation of a creating request, and false when it
// holds nothing a replay could use.
func entryOf(o *Observation) (journalEntry, bool) {
	e := journalEntry{CallbackURLs: o.CallbackURLs, Numbers: o.Numbers}
	for _, obj := range o.Faxes {
		e.FaxIDs = append(e.FaxIDs, obj.Fax.ID)
	}
	return e, len(e.FaxIDs) > 0 || len(e.Numbers) > 0
}

// append writes e to the journal; it has reached the operating system when append returns. The
// caller must later call recorded (or failedToRecord) exactly once for it.
func (j *journal) append(e journalEntry) error {
	payload, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding a send journal entry: %w", err)
	}
	if len(payload) > maxJournalEntry {
		return fmt.Errorf("a send journal entry of %d bytes is over the %d byte limit", len(payload), maxJournalEntry)
	}
	frame := make([]byte, 8+len(payload))
	binary.LittleEndian.PutUint32(frame[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:8], crc32.Checksum(payload, journalCRC))
	copy(frame[8:], payload)
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return errStopping
	}
	n, err := j.f.Write(frame)
	j.size += int64(n)
	if err != nil {
		j.mu.Unlock()
		return fmt.Errorf("writing the send journal: %w", err)
	}
	j.outstanding++
	j.mu.Unlock()
	return nil
}

// recorded tells the journal that one appended entry is now in the store. When none is left
// outstanding and the file has grown, it is emptied.
func (j *journal) recorded() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.outstanding--
	if j.outstanding == 0 && !j.failed && !j.closed && j.size >= journalTruncateAt {
		if err := j.f.Truncate(0); err == nil {
			j.size = 0
		}
	}
}

// failedToRecord tells the journal that the store could not record an appended entry: the file
// keeps it (and everything after it) for the replay when the storage is next opened.
func (j *journal) failedToRecord() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.outstanding--
	j.failed = true
}

// reset empties the journal after a replay recorded everything in it.
func (j *journal) reset() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("emptying the send journal after its replay: %w", err)
	}
	j.size = 0
	return nil
}

// emptied reports whether the journal holds nothing (tests).
func (j *journal) emptied() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size == 0
}

// close empties the file when everything in it was recorded, and closes it.
func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	var errs []error
	if j.outstanding == 0 && !j.failed && j.size > 0 {
		if err := j.f.Truncate(0); err != nil {
			errs = append(errs, fmt.Errorf("emptying the send journal: %w", err))
		}
	}
	if err := j.f.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("syncing the send journal: %w", err))
	}
	if err := j.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing the send journal: %w", err))
	}
	return errors.Join(errs...)
}
