package faxapp

import (
	"encoding/json"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// timeLayout is Phaxio's timestamp format: RFC 3339 with milliseconds and a numeric offset.
const timeLayout = "2006-01-02T15:04:05.000-07:00"

// Simulated transmission parameters.
const (
	centsPerPage = 7
	bitrate      = 14400
	resolution   = 8040
	busyWait     = 2 // ticks a recipient spends in willretry before the next attempt
	maxRetries   = 2 // retries after which an always-busy line fails
)

// Error types, ids and messages the simulation produces.
const (
	errDocumentConversion = "documentConversionError"
	errLine               = "lineError"
	errFax                = "faxError"
	errFatal              = "fatalError"
	errGeneral            = "generalError"

	cancelErrorID  = 126
	cancelErrorMsg = "Fax cancelled"
)

// testFailIDs maps the error types accepted by test_fail to the ids the simulation reports:
// Phaxio's own user-simulated ids where known (121, 122), the next free 12x ids otherwise.
var testFailIDs = map[string]int{
	errLine:               121,
	errDocumentConversion: 122,
	errFax:                123,
	errFatal:              124,
	errGeneral:            125,
}

// randomLineErrors are the line errors a randomly failing number picks from.
var randomLineErrors = []struct {
	id  int
	msg string
}{
	{11, "Call dropped prematurely"},
	{15, "Congestion"},
	{16, "Ring timeout"},
	{19, "Immediate hangup"},
	{50, "Call rejected"},
	{112, "No answer"},
}

// outcome is how the last attempt of a recipient ends.
type outcome int

const (
	outSuccess  outcome = iota // all pages transmitted
	outFailRing                // the call fails right after ringing
	outFailPage                // the call fails while transmitting page failPage
)

// plan is the fixed future of one recipient, drawn when the fax is created.
type plan struct {
	number   string
	busy     int // attempts that find the line busy before the last one
	out      outcome
	failPage int
	errType  string
	errID    int
	errMsg   string
}

// newPlan decides the behaviour of one recipient from its number's last four digits, test_fail,
// or the seeded generator keyed by (seed, fax id, number).
func newPlan(seed, id int64, number, testFail string) plan {
	p := plan{number: number}
	if testFail != "" {
		p.out, p.errType, p.errID, p.errMsg = outFailRing, testFail, testFailIDs[testFail], "User-simulated "+testFail
		return p
	}
	digits := digitsOf(number)
	switch digits[max(0, len(digits)-4):] {
	case "0000":
	case "0001":
		p.busy = 1
	case "0002":
		p.busy, p.out, p.errType, p.errID, p.errMsg = maxRetries, outFailRing, errLine, 17, "Busy"
	case "0003":
		p.out, p.failPage, p.errType, p.errID, p.errMsg = outFailPage, 2, errFax, 6, "Error communicating with far side"
	default:
		h := fnv.New64a()
		h.Write([]byte(strconv.FormatInt(id, 10) + "/" + number))
		rng := rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
		switch n := rng.IntN(100); {
		case n < 70:
		case n < 90:
			p.busy = 1
		default:
			e := randomLineErrors[rng.IntN(len(randomLineErrors))]
			p.out, p.errType, p.errID, p.errMsg = outFailRing, errLine, e.id, e.msg
		}
	}
	return p
}

func digitsOf(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b = append(b, s[i])
		}
	}
	return string(b)
}

// recState is a recipient as of some tick.
type recState struct {
	r        fax.Recipient
	page     int   // x_current_page
	terminal bool  // success or failure
	ok       bool  // success
	doneTick int64 // tick of completion when terminal
}

// at returns the recipient's state t ticks after the fax was created. Its first attempt starts at
// tick 1; an attempt rings for one tick, then either finds the line busy (willretry for busyWait
// ticks) or transmits one page per tick.
func (p plan) at(t int64, pages int, created time.Time, tick time.Duration) recState {
	s := recState{r: fax.Recipient{PhoneNumber: p.number}}
	if t < 1 {
		return s
	}
	rt, base := t-1, int64(1)
	for a := range p.busy {
		if rt < 1 {
			s.r.Status, s.r.RetryCount = fax.Str(fax.RecipientRinging), a
			return s
		}
		if rt < 1+busyWait {
			s.r.Status, s.r.RetryCount = fax.Str(fax.RecipientWillRetry), a+1
			return s
		}
		rt -= 1 + busyWait
		base += 1 + busyWait
	}
	s.r.RetryCount = p.busy
	if rt < 1 {
		s.r.Status = fax.Str(fax.RecipientRinging)
		return s
	}
	rt--
	base++
	n := int64(0) // pages transmitted before the outcome
	switch p.out {
	case outSuccess:
		n = int64(pages)
	case outFailPage:
		n = int64(min(p.failPage, pages))
	}
	if rt < n {
		s.r.Status, s.page = fax.Str(fax.RecipientCallActive), int(rt)+1
		return s
	}
	s.page, s.terminal, s.doneTick = int(n), true, base+n
	s.r.CompletedAt = fax.Str(created.Add(time.Duration(s.doneTick) * tick).Format(timeLayout))
	if p.out == outSuccess {
		s.ok = true
		s.r.Status, s.r.Bitrate, s.r.Resolution = fax.Str(fax.StatusSuccess), fax.Int(bitrate), fax.Int(resolution)
		return s
	}
	s.r.Status = fax.Str(fax.StatusFailure)
	s.r.ErrorType, s.r.ErrorID, s.r.ErrorMessage = fax.Str(p.errType), fax.Int(p.errID), fax.Str(p.errMsg)
	return s
}

// snapshot is a fax object as of some instant together with each recipient's x_current_page.
type snapshot struct {
	fax   fax.Fax
	pages []int
}

// ticks is the number of whole simulation steps between created and now.
func (s *Service) ticks(created, now time.Time) int64 {
	d := now.Sub(created)
	if d < 0 {
		return 0
	}
	return int64(d / s.cfg.Tick)
}

// state computes a fax's state at now. Nothing is stored: the state is a pure function of the
// record and the clock.
func (s *Service) state(rec *record, now time.Time) snapshot {
	f := fax.Fax{
		ID:        rec.id,
		Direction: rec.direction,
		IsTest:    true,
		CreatedAt: rec.created.Format(timeLayout),
		Tags:      map[string]string{},
	}
	for k, v := range rec.spec.tags {
		f.Tags[k] = v
	}
	tick := s.cfg.Tick
	if rec.direction == fax.DirectionReceived {
		f.NumPages = rec.spec.pages
		f.FromNumber, f.ToNumber = fax.Str(rec.from), fax.Str(rec.to)
		f.Status = fax.StatusInProgress
		if s.ticks(rec.created, now) >= 1 {
			f.Status = fax.StatusSuccess
			f.CompletedAt = fax.Str(rec.created.Add(tick).Format(timeLayout))
			f.Cost = centsPerPage * f.NumPages
		}
		f.Normalize()
		return snapshot{fax: f, pages: []int{}}
	}

	if rec.spec.callerID != "" {
		f.CallerID = fax.Str(rec.spec.callerID)
	}
	at := now
	if rec.cancelled && rec.cancelAt.Before(now) {
		at = rec.cancelAt
	}
	t := s.ticks(rec.created, at)
	snap := snapshot{pages: make([]int, len(rec.plans))}
	f.Recipients = make([]fax.Recipient, len(rec.plans))
	f.Status = fax.StatusQueued
	if t >= 1 {
		f.NumPages, f.Status = rec.spec.pages, fax.StatusInProgress
	}
	done, succeeded := 0, 0
	var last int64
	var firstFail *fax.Recipient
	for i, p := range rec.plans {
		rs := p.at(t, rec.spec.pages, rec.created, tick)
		if rec.cancelled && !rs.terminal {
			rs.terminal = true
			rs.r.Status = fax.Str(fax.StatusFailure)
			rs.r.CompletedAt = fax.Str(rec.cancelAt.Format(timeLayout))
			rs.r.ErrorType, rs.r.ErrorID, rs.r.ErrorMessage = fax.Str(errGeneral), fax.Int(cancelErrorID), fax.Str(cancelErrorMsg)
		}
		f.Recipients[i], snap.pages[i] = rs.r, rs.page
		if !rs.terminal {
			continue
		}
		done++
		last = max(last, rs.doneTick)
		if rs.ok {
			succeeded++
			f.Cost += centsPerPage * rec.spec.pages
		} else if firstFail == nil {
			firstFail = &f.Recipients[i]
		}
	}
	switch {
	case rec.cancelled:
		f.Status = fax.StatusFailure
		f.CompletedAt = fax.Str(rec.cancelAt.Format(timeLayout))
		f.ErrorType, f.ErrorID, f.ErrorMessage = fax.Str(errGeneral), fax.Int(cancelErrorID), fax.Str(cancelErrorMsg)
	case done == len(rec.plans):
		switch succeeded {
		case len(rec.plans):
			f.Status = fax.StatusSuccess
		case 0:
			f.Status = fax.StatusFailure
		default:
			f.Status = fax.StatusPartialSuccess
		}
		f.CompletedAt = fax.Str(rec.created.Add(time.Duration(last) * tick).Format(timeLayout))
		if firstFail != nil {
			f.ErrorType, f.ErrorID, f.ErrorMessage = firstFail.ErrorType, firstFail.ErrorID, firstFail.ErrorMessage
		}
	}
	f.Normalize()
	snap.fax = f
	return snap
}

// MarshalJSON encodes the fax in v2.1 field order with x_current_page appended to each recipient.
func (s snapshot) MarshalJSON() ([]byte, error) {
	f := s.fax
	recips := make([]recipientView, len(f.Recipients))
	for i, r := range f.Recipients {
		recips[i] = recipientView{Recipient: r, page: s.pages[i]}
	}
	return json.Marshal(faxView{
		ID: f.ID, Direction: f.Direction, NumPages: f.NumPages, Status: f.Status, IsTest: f.IsTest,
		CreatedAt: f.CreatedAt, CallerID: f.CallerID, FromNumber: f.FromNumber, CompletedAt: f.CompletedAt,
		CallerName: f.CallerName, Cost: f.Cost, Tags: f.Tags, Recipients: recips, ToNumber: f.ToNumber,
		ErrorID: f.ErrorID, ErrorType: f.ErrorType, ErrorMessage: f.ErrorMessage, Barcodes: f.Barcodes,
	})
}

// faxView mirrors fax.Fax field for field (same names, same order) with extended recipients.
type faxView struct {
	ID           int64             `json:"id"`
	Direction    string            `json:"direction"`
	NumPages     int               `json:"num_pages"`
	Status       string            `json:"status"`
	IsTest       bool              `json:"is_test"`
	CreatedAt    string            `json:"created_at"`
	CallerID     *string           `json:"caller_id"`
	FromNumber   *string           `json:"from_number"`
	CompletedAt  *string           `json:"completed_at"`
	CallerName   *string           `json:"caller_name"`
	Cost         int               `json:"cost"`
	Tags         map[string]string `json:"tags"`
	Recipients   []recipientView   `json:"recipients"`
	ToNumber     *string           `json:"to_number"`
	ErrorID      *int              `json:"error_id"`
	ErrorType    *string           `json:"error_type"`
	ErrorMessage *string           `json:"error_message"`
	Barcodes     []fax.Barcode     `json:"barcodes"`
}

// recipientView is a v2.1 recipient followed by the fax.ExtCurrentPage extension field.
type recipientView struct {
	fax.Recipient
	page int
}

// MarshalJSON encodes the v2.1 recipient fields in order, then "x_current_page".
func (r recipientView) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(r.Recipient)
	if err != nil {
		return nil, err
	}
	b = append(b[:len(b)-1], `,"`+fax.ExtCurrentPage+`":`...)
	b = strconv.AppendInt(b, int64(r.page), 10)
	return append(b, '}'), nil
}
