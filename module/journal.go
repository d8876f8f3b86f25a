package module

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile"
)

// The send journal's segment files in the storage directory are named
// faxhook-sends-<number>.journal (Badger ignores files it does not know).
const (
	journalPrefix = "faxhook-sends-"
	journalSuffix = ".journal"
)

// setAsideName is the file, in the storage directory, where entries that can never be recorded
// are kept (one JSON object a line) for an operator to look at; faxhook never reads it.
const setAsideName = "faxhook-sends-set-aside.jsonl"

// journalSegmentSize is the size from which new entries go to a new segment file.
const journalSegmentSize = 256 << 10

// maxJournalEntry bounds one entry; a longer length field marks a torn or corrupt tail.
const maxJournalEntry = 1 << 20

var journalCRC = crc32.MakeTable(crc32.Castagnoli)

// journalEntry is what a creating request told faxhook: the ids it created and their
// callback_url, or the phone numbers it provisioned. It is all a replay needs: the poller asks
// the fax service for the rest.
type journalEntry struct {
	FaxIDs []int64 `json:"fax_ids,omitempty"`
	// UpstreamIDs holds, beside FaxIDs, each fax's id as the fax service spells it when a
	// mapping derived FaxIDs from it (else ""); nil when none was derived.
	UpstreamIDs  []string         `json:"upstream_ids,omitempty"`
	CallbackURLs []string         `json:"callback_urls,omitempty"`
	Numbers      []profile.Number `json:"numbers,omitempty"`
	// APIKey is the request's API key (Capture.APIKey), which makes the faxes its account's.
	APIKey string `json:"api_key,omitempty"`
	// TraceParent is the request's W3C traceparent (Capture.TraceParent), when it was traced.
	TraceParent string `json:"traceparent,omitempty"`
}

// observation turns a replayed entry back into what the tracker records.
func (e journalEntry) observation() *Observation {
	o := &Observation{CallbackURLs: e.CallbackURLs, Numbers: e.Numbers, APIKey: e.APIKey, TraceParent: e.TraceParent}
	for i, id := range e.FaxIDs {
		var obj profile.Object
		obj.Fax.ID = id
		if i < len(e.UpstreamIDs) {
			obj.UpstreamID = e.UpstreamIDs[i]
		}
		o.Faxes = append(o.Faxes, obj)
	}
	return o
}

// journal is the send journal: append-only files where a creating request's callback_url is
// written before the client gets the new fax id, so that a crash of Caddy before the store has
// recorded it cannot lose it. The store records it moments later, off the request path, in order
// with everything observed after it; entries are replayed into the store when the storage is
// opened.
//
// Entries go to the current segment file. Once it has grown past journalSegmentSize, the next
// entries start a new segment, and the old one is deleted as soon as every entry in it is
// recorded, so the journal stays small under any steady load. An entry whose commit failed keeps
// its segment for the next replay.
//
// A write reaches the operating system before append returns, which survives a crash of the
// process; the journal is not fsynced. What guards against a power loss is the store's own
// commit of the entry, fsynced with sync_writes, which follows within milliseconds: an fsync of
// the journal would only duplicate it.
type journal struct {
	dir    string
	mu     sync.Mutex
	cur    *segment
	old    []*segment // full segments with entries not yet recorded
	next   uint64     // number of the next segment file
	closed bool
	// failures counts failedToRecord calls, so that a retry of failed segments (diskspace.go)
	// can tell whether another entry failed while it ran.
	failures uint64
}

// segment is one journal file.
type segment struct {
	path        string
	f           *os.File
	size        int64
	outstanding int  // entries appended and not yet recorded in the store
	failed      bool // recording an entry failed: keep the file for the next replay
}

// openJournal opens the journal in dir and returns it with the entries a previous run left in
// it, oldest first. A torn or corrupt tail of a segment (a crash in mid-write) ends its entries.
// The old segments stay on disk until reset (after the replay recorded them).
func openJournal(dir string) (*journal, []journalEntry, error) {
	j := &journal{dir: dir}
	olds, err := j.segments()
	if err != nil {
		return nil, nil, err
	}
	var entries []journalEntry
	for _, sg := range olds {
		es, err := readSegment(sg.path)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, es...)
		j.next = max(j.next, sg.n+1)
	}
	if err := j.startSegment(); err != nil {
		return nil, nil, err
	}
	return j, entries, nil
}

// oldSegment is a segment file found in the storage directory.
type oldSegment struct {
	path string
	n    uint64
}

// segments lists the journal's segment files other than the current one, oldest first.
func (j *journal) segments() ([]oldSegment, error) {
	names, err := filepath.Glob(filepath.Join(j.dir, journalPrefix+"*"+journalSuffix))
	if err != nil {
		return nil, fmt.Errorf("listing the send journal: %w", err)
	}
	var out []oldSegment
	for _, p := range names {
		num := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), journalPrefix), journalSuffix)
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil || (j.cur != nil && p == j.cur.path) {
			continue
		}
		out = append(out, oldSegment{path: p, n: n})
	}
	slices.SortFunc(out, func(a, b oldSegment) int { return cmp.Compare(a.n, b.n) })
	return out, nil
}

// startSegment opens a new, empty current segment.
func (j *journal) startSegment() error {
	path := filepath.Join(j.dir, fmt.Sprintf("%s%06d%s", journalPrefix, j.next, journalSuffix))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("creating the send journal: %w", err)
	}
	j.next++
	switch {
	case j.cur == nil:
	case j.cur.outstanding > 0 || j.cur.failed:
		j.old = append(j.old, j.cur) // deleted once its entries are recorded
	default:
		j.cur.remove()
	}
	j.cur = &segment{path: path, f: f}
	return nil
}

// remove closes and deletes a segment whose entries are all recorded.
func (sg *segment) remove() {
	sg.f.Close()
	os.Remove(sg.path)
}

// readSegment returns the entries of the segment file at path (see readJournal).
func readSegment(path string) ([]journalEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening the send journal: %w", err)
	}
	defer f.Close()
	es, err := readJournal(f)
	if err != nil {
		return nil, fmt.Errorf("reading the send journal %s: %w", path, err)
	}
	return es, nil
}

// readJournal decodes the entries of a segment file until its end or the first frame that is
// incomplete or fails its checksum (entries are written in order, so nothing follows a torn one).
func readJournal(f *os.File) ([]journalEntry, error) {
	r := bufio.NewReader(f)
	var entries []journalEntry
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return entries, nil
			}
			return nil, err
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n == 0 || n > maxJournalEntry {
			return entries, nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return entries, nil
			}
			return nil, err
		}
		if crc32.Checksum(payload, journalCRC) != binary.LittleEndian.Uint32(hdr[4:]) {
			return entries, nil
		}
		var e journalEntry
		if err := json.Unmarshal(payload, &e); err != nil {
			return entries, nil
		}
		entries = append(entries, e)
	}
}

// entryOf returns the journal entry of an observation of a creating request, and false when it
// holds nothing a replay could use.
func entryOf(o *Observation) (journalEntry, bool) {
	e := journalEntry{CallbackURLs: o.CallbackURLs, Numbers: o.Numbers, APIKey: o.APIKey, TraceParent: o.TraceParent}
	for i, obj := range o.Faxes {
		e.FaxIDs = append(e.FaxIDs, obj.Fax.ID)
		if obj.UpstreamID != "" {
			if e.UpstreamIDs == nil {
				e.UpstreamIDs = make([]string, len(o.Faxes))
			}
			e.UpstreamIDs[i] = obj.UpstreamID
		}
	}
	return e, len(e.FaxIDs) > 0 || len(e.Numbers) > 0
}

// append writes e to the journal; it has reached the operating system when append returns. The
// caller must later pass the returned segment to recorded or failedToRecord, exactly once.
func (j *journal) append(e journalEntry) (*segment, error) {
	payload, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encoding a send journal entry: %w", err)
	}
	if len(payload) > maxJournalEntry {
		return nil, fmt.Errorf("a send journal entry of %d bytes is over the %d byte limit", len(payload), maxJournalEntry)
	}
	frame := make([]byte, 8+len(payload))
	binary.LittleEndian.PutUint32(frame[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:8], crc32.Checksum(payload, journalCRC))
	copy(frame[8:], payload)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, errStopping
	}
	if j.cur.size >= journalSegmentSize {
		if err := j.startSegment(); err != nil {
			return nil, err
		}
	}
	sg := j.cur
	n, err := sg.f.Write(frame)
	sg.size += int64(n)
	if err != nil {
		return nil, fmt.Errorf("writing the send journal: %w", err)
	}
	sg.outstanding++
	return sg, nil
}

// recorded tells the journal that an entry appended to sg is now in the store. A full segment
// whose entries are all recorded is deleted.
func (j *journal) recorded(sg *segment) {
	j.mu.Lock()
	defer j.mu.Unlock()
	sg.outstanding--
	if sg == j.cur || sg.outstanding > 0 || sg.failed || j.closed {
		return
	}
	for i, o := range j.old {
		if o == sg {
			j.old = slices.Delete(j.old, i, i+1)
			sg.remove()
			return
		}
	}
}

// failedToRecord tells the journal that the store could not record an entry appended to sg: the
// segment keeps it (and everything else in it) for the replay when the storage is next opened.
func (j *journal) failedToRecord(sg *segment) {
	j.mu.Lock()
	defer j.mu.Unlock()
	sg.outstanding--
	sg.failed = true
	j.failures++
}

// setAsidePath is the path of the set-aside file.
func (j *journal) setAsidePath() string { return filepath.Join(j.dir, setAsideName) }

// setAside appends an entry that can never be recorded, and why, to the set-aside file.
func (j *journal) setAside(e journalEntry, why error) error {
	line, err := json.Marshal(struct {
		At    time.Time    `json:"at"`
		Error string       `json:"error"`
		Entry journalEntry `json:"entry"`
	}{time.Now().UTC(), why.Error(), e})
	if err != nil {
		return fmt.Errorf("encoding a set-aside entry: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	f, err := os.OpenFile(j.setAsidePath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the set-aside file: %w", err)
	}
	_, err = f.Write(append(line, '\n'))
	return errors.Join(err, f.Close())
}

// reset deletes the segments a replay recorded (all but the current one).
func (j *journal) reset() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	olds, err := j.segments()
	if err != nil {
		return err
	}
	for _, sg := range olds {
		if err := os.Remove(sg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing a replayed send journal segment: %w", err)
		}
	}
	return nil
}

// close deletes the segments whose entries are all recorded and closes the others, which the
// next open replays.
func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	var errs []error
	for _, sg := range append(j.old, j.cur) {
		if sg.outstanding == 0 && !sg.failed {
			sg.remove()
			continue
		}
		if err := sg.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the send journal: %w", err))
		}
	}
	return errors.Join(errs...)
}

// failedSegments returns the segments holding an entry whose commit failed, and the journal's
// failure count, for clearFailed.
func (j *journal) failedSegments() ([]*segment, uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, 0
	}
	var segs []*segment
	for _, sg := range append(j.old, j.cur) {
		if sg.failed {
			segs = append(segs, sg)
		}
	}
	return segs, j.failures
}

// clearFailed marks segs as holding no failed entry any more, unless an entry failed since
// failedSegments returned gen; full segments with no entry outstanding are deleted.
func (j *journal) clearFailed(segs []*segment, gen uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.failures != gen {
		return
	}
	for _, sg := range segs {
		sg.failed = false
		if sg == j.cur || sg.outstanding > 0 {
			continue
		}
		if i := slices.Index(j.old, sg); i >= 0 {
			j.old = slices.Delete(j.old, i, i+1)
			sg.remove()
		}
	}
}
