package faxapp

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

const defaultTestNumber = "+18773346654"

// createFax handles POST /faxes: a send, or a test receive with direction=received.
func (s *Service) createFax(w http.ResponseWriter, r *http.Request) {
	form, files, cleanup, ok := s.parseBody(w, r)
	if !ok {
		return
	}
	defer cleanup()
	owner := s.keyOf(r)
	if form.Get("direction") == fax.DirectionReceived {
		s.receiveFax(w, owner, form, files)
		return
	}
	if d := form.Get("direction"); d != "" && d != fax.DirectionSent {
		fail(w, http.StatusUnprocessableEntity, "direction must be sent or received")
		return
	}

	spec := sendSpec{tags: tags(form), callerID: strings.TrimSpace(form.Get("caller_id")), owner: owner}
	for _, to := range values(form, "to") {
		n, valid := normalizeNumber(to)
		if !valid {
			fail(w, http.StatusUnprocessableEntity, "Invalid recipient phone number: "+to)
			return
		}
		spec.to = append(spec.to, n)
	}
	urls := values(form, "content_url")
	switch {
	case len(spec.to) == 0:
		fail(w, http.StatusUnprocessableEntity, "You must provide at least one recipient (to)")
		return
	case len(files) == 0 && len(urls) == 0:
		fail(w, http.StatusUnprocessableEntity, "You must provide at least one file or content_url")
		return
	case len(spec.tags) > 10:
		fail(w, http.StatusUnprocessableEntity, "A fax may have at most 10 tags")
		return
	}
	if tf := form.Get("test_fail"); tf != "" {
		if _, known := testFailIDs[tf]; !known {
			fail(w, http.StatusUnprocessableEntity, "test_fail must be one of documentConversionError, lineError, faxError, fatalError, generalError")
			return
		}
		spec.testFail = tf
	}
	pages, first, err := readFiles(files)
	if err != nil {
		fail(w, http.StatusUnprocessableEntity, "Could not read file: "+err.Error())
		return
	}
	spec.pages, spec.file = pages+len(urls), first

	s.mu.Lock()
	id := s.addSent(spec)
	s.mu.Unlock()
	success(w, "Fax queued for sending", idData{ID: id})
}

// addSent creates a sent fax from spec; s.mu must be held.
func (s *Service) addSent(spec sendSpec) int64 {
	id := s.nextID
	s.nextID++
	rec := &record{id: id, direction: fax.DirectionSent, created: s.cfg.Now(), spec: spec, file: spec.file, owner: spec.owner}
	for _, to := range spec.to {
		rec.plans = append(rec.plans, newPlan(s.cfg.Seed, id, to, spec.testFail))
	}
	s.faxes[id] = rec
	s.order = append(s.order, id)
	return id
}

// receiveFax simulates an incoming fax (Phaxio's test receive).
func (s *Service) receiveFax(w http.ResponseWriter, owner string, form url.Values, files []*multipart.FileHeader) {
	if len(files) == 0 {
		fail(w, http.StatusUnprocessableEntity, "You must provide a file")
		return
	}
	var nums [2]string
	for i, name := range []string{"from_number", "to_number"} {
		nums[i] = defaultTestNumber
		if v := strings.TrimSpace(form.Get(name)); v != "" {
			n, valid := normalizeNumber(v)
			if !valid {
				fail(w, http.StatusUnprocessableEntity, "Invalid "+name+": "+v)
				return
			}
			nums[i] = n
		}
	}
	pages, file, err := readFiles(files[:1])
	if err != nil {
		fail(w, http.StatusUnprocessableEntity, "Could not read file: "+err.Error())
		return
	}
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.faxes[id] = &record{
		id: id, direction: fax.DirectionReceived, created: s.cfg.Now(),
		spec: sendSpec{pages: pages}, from: nums[0], to: nums[1], file: file, owner: owner,
	}
	s.order = append(s.order, id)
	s.mu.Unlock()
	success(w, fmt.Sprintf("Test fax received from %s to %s.  Calling back now...", nums[0], nums[1]), idData{ID: id})
}

// readFiles counts the pages of the uploads (at least one each) and returns the first one's bytes.
// Files are streamed from their temporary files; only the first is held in memory.
func readFiles(files []*multipart.FileHeader) (pages int, first []byte, err error) {
	for i, fh := range files {
		var c pageCounter
		if i == 0 {
			if first, err = readAll(fh); err != nil {
				return 0, nil, err
			}
			for off := 0; off < len(first); off += 64 << 10 {
				c.Write(first[off:min(len(first), off+64<<10)])
			}
		} else {
			f, err := fh.Open()
			if err != nil {
				return 0, nil, err
			}
			_, err = io.Copy(&c, f)
			f.Close()
			if err != nil {
				return 0, nil, err
			}
		}
		pages += max(1, c.Count())
	}
	return pages, first, nil
}

// readAll reads an uploaded file into a slice of its exact size.
func readAll(fh *multipart.FileHeader) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, fh.Size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}

// lookup parses a fax id and finds its record among those the account owner sees; s.mu must be
// held. It answers 404 itself.
func (s *Service) lookup(w http.ResponseWriter, owner, idStr string) *record {
	id, err := strconv.ParseInt(idStr, 10, 64)
	if rec, found := s.faxes[id]; err == nil && found && s.owns(owner, rec) {
		return rec
	}
	fail(w, http.StatusNotFound, "Fax not found")
	return nil
}

func (s *Service) getFax(w http.ResponseWriter, owner, idStr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.lookup(w, owner, idStr); rec != nil {
		success(w, "Metadata for fax", s.state(rec, s.cfg.Now()))
	}
}

func (s *Service) deleteFax(w http.ResponseWriter, owner, idStr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.lookup(w, owner, idStr)
	if rec == nil {
		return
	}
	delete(s.faxes, rec.id)
	s.order = slices.DeleteFunc(s.order, func(id int64) bool { return id == rec.id })
	success(w, "Deleted fax successfully!", nil)
}

func (s *Service) cancelFax(w http.ResponseWriter, owner, idStr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.lookup(w, owner, idStr)
	if rec == nil {
		return
	}
	now := s.cfg.Now()
	switch {
	case rec.direction != fax.DirectionSent:
		fail(w, http.StatusUnprocessableEntity, "Only sent faxes can be cancelled")
	case fax.IsTerminal(s.state(rec, now).fax.Status):
		fail(w, http.StatusUnprocessableEntity, "Fax has already completed and cannot be cancelled")
	default:
		rec.cancelled, rec.cancelAt = true, now
		success(w, "Fax cancellation scheduled successfully.", idData{ID: rec.id})
	}
}

func (s *Service) resendFax(w http.ResponseWriter, owner, idStr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.lookup(w, owner, idStr)
	if rec == nil {
		return
	}
	if rec.direction != fax.DirectionSent {
		fail(w, http.StatusUnprocessableEntity, "Only sent faxes can be resent")
		return
	}
	success(w, "Fax queued for resending", idData{ID: s.addSent(rec.spec)})
}

func (s *Service) getFile(w http.ResponseWriter, r *http.Request, owner, idStr string) {
	s.mu.Lock()
	rec := s.lookup(w, owner, idStr)
	var file []byte
	if rec != nil {
		file = rec.file
	}
	s.mu.Unlock()
	switch {
	case rec == nil:
	case r.URL.Query().Get("thumbnail") != "":
		fail(w, http.StatusUnprocessableEntity, "Thumbnails are not supported by this simulated service")
	case file == nil:
		fail(w, http.StatusNotFound, "File not found")
	default:
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Length", strconv.Itoa(len(file)))
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="fax-%d.pdf"`, rec.id))
		_, _ = w.Write(file)
	}
}

func (s *Service) deleteFile(w http.ResponseWriter, owner, idStr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.lookup(w, owner, idStr); rec != nil {
		rec.file = nil
		success(w, "Deleted file successfully!", nil)
	}
}

// listFaxes handles GET /faxes with Phaxio's filters, newest first.
func (s *Service) listFaxes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, perPage, valid := pageParams(w, q)
	if !valid {
		return
	}
	var before, after time.Time
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"created_before", &before}, {"created_after", &after}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				fail(w, http.StatusUnprocessableEntity, p.name+" must be an RFC 3339 timestamp")
				return
			}
			*p.dst = t
		}
	}
	direction, status, wantTags := q.Get("direction"), q.Get("status"), tags(q)
	owner := s.keyOf(r)
	phone := q.Get("phone_number")
	if n, valid := normalizeNumber(phone); valid {
		phone = n
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	matches := []snapshot{}
	for _, id := range slices.Backward(s.order) {
		rec := s.faxes[id]
		if !s.owns(owner, rec) {
			continue
		}
		if !before.IsZero() && !rec.created.Before(before) || !after.IsZero() && rec.created.Before(after) ||
			direction != "" && rec.direction != direction {
			continue
		}
		snap := s.state(rec, now)
		if status != "" && snap.fax.Status != status || !hasTags(snap.fax.Tags, wantTags) ||
			phone != "" && !hasNumber(snap.fax, phone) {
			continue
		}
		matches = append(matches, snap)
	}
	writeJSON(w, http.StatusOK, envelope{
		Success: true, Message: "Retrieved faxes successfully",
		Data:   pageOf(matches, page, perPage),
		Paging: &paging{Total: len(matches), PerPage: perPage, Page: page},
	})
}

func hasTags(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func hasNumber(f fax.Fax, n string) bool {
	if f.FromNumber != nil && *f.FromNumber == n || f.ToNumber != nil && *f.ToNumber == n {
		return true
	}
	return slices.ContainsFunc(f.Recipients, func(r fax.Recipient) bool { return r.PhoneNumber == n })
}

// pageParams reads page (1-based, default 1) and per_page (1..1000, default 25); it answers 422
// itself when they are invalid.
func pageParams(w http.ResponseWriter, q url.Values) (page, perPage int, ok bool) {
	page, perPage = 1, 25
	var err error
	if v := q.Get("page"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 1 {
			fail(w, http.StatusUnprocessableEntity, "page must be a positive integer")
			return 0, 0, false
		}
	}
	if v := q.Get("per_page"); v != "" {
		if perPage, err = strconv.Atoi(v); err != nil || perPage < 1 || perPage > 1000 {
			fail(w, http.StatusUnprocessableEntity, "per_page must be an integer between 1 and 1000")
			return 0, 0, false
		}
	}
	return page, perPage, true
}

// pageOf returns the page-th slice of perPage items (empty, never nil, beyond the end).
func pageOf[T any](items []T, page, perPage int) []T {
	start := len(items)
	if page-1 <= len(items)/perPage {
		start = min(len(items), (page-1)*perPage)
	}
	return items[start:min(len(items), start+perPage)]
}
