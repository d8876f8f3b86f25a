package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// ErrSkipped marks the errors of faxes that Extract found but could not convert (a value that
// does not fit its field). Extract returns the other faxes of the same body beside it.
var ErrSkipped = errors.New("fax skipped")

// idMask keeps derived ids within the integers a float64 holds exactly (JavaScript's
// Number.MAX_SAFE_INTEGER is 2^53-1).
const idMask = 1<<53 - 1

// DeriveID returns the v2.1 id faxhook uses for an upstream id that is not an integer within
// int64: the FNV-1a 64-bit hash of its text masked to 53 bits (never 0). The same text always
// yields the same id; different texts collide with negligible probability (about n²/2⁵⁴ for n
// faxes).
func DeriveID(upstreamID string) int64 {
	h := fnv.New64a()
	h.Write([]byte(upstreamID))
	id := int64(h.Sum64() & idMask)
	if id == 0 {
		id = 1
	}
	return id
}

// Found is one fax object found in a body, with the upstream's own spelling of its id.
type Found struct {
	// Object is the fax as Phaxio would have produced it from a Phaxio body.
	Object Object
	// UpstreamID is the id as the upstream wrote it ("101000", "job-7f3a"): the value to put in
	// the {id} segment of the upstream's routes (see Mapping.Path). Object.Fax.ID is the same
	// number, or DeriveID of it.
	UpstreamID string
}

// Extract returns the fax objects in the response body of a route (RouteSend, …, as Match
// returns it), built exactly as Phaxio builds them from a Phaxio body: the v2.1 fields that were
// present and well typed, Full when a status was present, and CurrentPage from
// recipient.current_page.
//
// send and resend responses yield the new fax's id only (Full false) when SendID is set; file
// responses yield nothing. A body that is not JSON, or holds nothing at the configured path,
// yields no objects and an error that wraps ErrNoObjects or describes the JSON error.
// Faxes that do not convert are left out and reported in an error that wraps ErrSkipped,
// returned together with the faxes that did convert: use the objects even when err != nil.
func (m *Mapping) Extract(route string, body []byte) ([]Object, error) {
	found, err := m.ExtractWithIDs(route, body)
	if len(found) == 0 {
		return nil, err
	}
	objs := make([]Object, len(found))
	for i := range found {
		objs[i] = found[i].Object
	}
	return objs, err
}

// ExtractWithIDs is Extract keeping each fax's upstream id.
func (m *Mapping) ExtractWithIDs(route string, body []byte) ([]Found, error) {
	c, err := m.compile()
	if err != nil {
		return nil, err
	}
	var at path
	idOnly := false
	switch route {
	case RouteSend, RouteResend:
		if m.SendID != "" {
			at, idOnly = c.sendID, true
		} else {
			at = c.sendObject
		}
	case RouteStatus, RouteCancel:
		at = c.object
	case RouteList:
		at = c.list
	case RouteFile:
		return nil, nil
	default:
		return nil, fmt.Errorf("mapping: unknown route %q", route)
	}
	root, err := decodeJSON(body)
	if err != nil {
		return nil, fmt.Errorf("mapping: %s response is not JSON: %w", route, err)
	}
	v, st, err := at.lookup(root)
	if err == nil && st == missing && !idOnly && (route == RouteSend || route == RouteResend) && m.SendObject != "" {
		// An API that answers a list for several recipients and the fax itself for one
		// (Sinch): nothing at send_object means the fax object at object.
		at = c.object
		v, st, err = at.lookup(root)
	}
	switch {
	case err != nil:
		return nil, misfit(route, fmt.Errorf("mapping: %s response: %w: %w", route, ErrNoObjects, err))
	case st == missing && route == RouteList:
		// An empty list whose array is left out (as proto3 JSON does): no faxes, no misfit.
		return nil, fmt.Errorf("mapping: %s response: %w: nothing at %q", route, ErrNoObjects, at.text)
	case st != found:
		return nil, misfit(route, fmt.Errorf("mapping: %s response: %w: nothing at %q", route, ErrNoObjects, at.text))
	}
	if idOnly {
		ids, isList := v.([]any) // one id per new fax
		if !isList {
			ids = []any{v}
		}
		out := make([]Found, 0, len(ids))
		var errs []error
		for _, idv := range ids {
			f, err := c.idOnly(idv)
			if err != nil {
				errs = append(errs, fmt.Errorf("mapping: %s response: %w: send_id: %w", route, ErrSkipped, err))
				continue
			}
			out = append(out, f)
		}
		return out, errors.Join(errs...)
	}
	var items []any
	switch x := v.(type) {
	case map[string]any:
		items = []any{x}
	case []any:
		items = x
	default:
		return nil, misfit(route, fmt.Errorf("mapping: %s response: %w: %q is %s, neither object nor array", route, ErrNoObjects, at.text, describe(v)))
	}
	out := make([]Found, 0, len(items))
	var errs []error
	for i, item := range items {
		f, err := c.fax(item)
		if err != nil {
			errs = append(errs, fmt.Errorf("mapping: %s response, fax %d: %w: %w", route, i, ErrSkipped, err))
			continue
		}
		out = append(out, f)
	}
	return out, errors.Join(errs...)
}

// misfitError marks an error of a response in which the mapping found no fax object where one
// belongs: a successful answer of the send, resend, status or list route, so the mapping's
// object, list_objects, send_id or send_object does not fit the service's JSON.
type misfitError struct{ error }

func (e misfitError) Unwrap() error { return e.error }

// misfit marks err as a misfit of the mapping, except for the cancel route, whose answer need
// not carry a fax.
func misfit(route string, err error) error {
	if route == RouteCancel {
		return err
	}
	return misfitError{err}
}

// IsMappingError reports whether an error of Extract (or a mapped Profile's Faxes) says that the
// mapping does not fit the service's JSON: a fax was skipped because a value did not fit its
// field (ErrSkipped), or a successful send, resend, status or list answer held no fax object at
// the mapping's path. Other errors (a body that is not JSON, a cancel answer without a fax, a
// list answer without the key of its array, which proto3 JSON leaves out when empty) are not.
func IsMappingError(err error) bool {
	var m misfitError
	return errors.Is(err, ErrSkipped) || errors.As(err, &m)
}

// NewID returns the id of the fax a send or resend response announces (at SendID, or the id of
// the fax object at Object when SendID is empty), as faxhook's id and as the upstream wrote it.
// ok is false if the body holds no such id.
func (m *Mapping) NewID(body []byte) (id int64, upstreamID string, ok bool) {
	found, err := m.ExtractWithIDs(RouteSend, body)
	if err != nil || len(found) != 1 {
		return 0, "", false
	}
	return found[0].Object.Fax.ID, found[0].UpstreamID, true
}

// compiled is a Mapping with its paths parsed.
type compiled struct {
	m                                *Mapping
	object, list, sendID, sendObject path
	f                                map[string]path            // v2.1 fax field name → path
	byDir                            map[string]map[string]path // direction → f with FieldsByDirection applied
	r                                map[string]path            // v2.1 recipient field name (and x_current_page, pages_done) → path
	times                            timeReader
}

func (m *Mapping) compile() (*compiled, error) {
	c := &compiled{m: m, f: map[string]path{}, r: map[string]path{}}
	var err error
	if c.object, err = mustPath("object", m.Object, false); err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	if c.list, err = mustPath("list_objects", m.ListObjects, false); err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	if c.sendID, err = mustPath("send_id", m.SendID, false); err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	c.sendObject = c.object
	if m.SendObject != "" {
		if c.sendObject, err = mustPath("send_object", m.SendObject, false); err != nil {
			return nil, fmt.Errorf("mapping: %w", err)
		}
	}
	for _, fp := range m.fieldPaths() {
		if fp.path == "" {
			continue
		}
		p, err := mustPath(fp.name, fp.path, true)
		if err != nil {
			return nil, fmt.Errorf("mapping: %w", err)
		}
		if name, ok := strings.CutPrefix(fp.name, "fields."); ok {
			c.f[name] = p
		} else if name, ok := strings.CutPrefix(fp.name, "recipient."); ok {
			if name == "current_page" {
				name = fax.ExtCurrentPage
			}
			c.r[name] = p
		}
	}
	if _, ok := c.f["id"]; !ok {
		return nil, errors.New("mapping: fields.id: required")
	}
	for dir, fm := range m.FieldsByDirection {
		paths := maps.Clone(c.f)
		for _, fp := range faxFieldPaths("", &fm, true) {
			switch fp.path {
			case "":
				continue
			case unmapped:
				delete(paths, fp.name)
				continue
			}
			p, err := mustPath("fields_by_direction."+dir+"."+fp.name, fp.path, true)
			if err != nil {
				return nil, fmt.Errorf("mapping: %w", err)
			}
			paths[fp.name] = p
		}
		if c.byDir == nil {
			c.byDir = map[string]map[string]path{}
		}
		c.byDir[dir] = paths
	}
	if c.times, err = newTimeReader(m.TimeFormat, m.TimeZone); err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	return c, nil
}

// idOf converts an upstream id: integers within int64 as they are, other strings and numbers
// through DeriveID.
func idOf(v any) (id int64, upstream string, err error) {
	switch c := v.(type) {
	case json.Number:
		upstream = string(c)
	case string:
		upstream = c
	default:
		return 0, "", fmt.Errorf("%s is not an id", describe(v))
	}
	if upstream == "" {
		return 0, "", errors.New("the id is empty")
	}
	if n, err := asInt64(v); err == nil {
		return n, upstream, nil
	}
	return DeriveID(upstream), upstream, nil
}

// idOnly builds the object of a send response: {"id":N}.
func (c *compiled) idOnly(v any) (Found, error) {
	id, upstream, err := idOf(v)
	if err != nil {
		return Found{}, err
	}
	o := object(map[string]any{"id": id})
	if upstream != strconv.FormatInt(o.Fax.ID, 10) {
		o.UpstreamID = upstream
	}
	return Found{Object: o, UpstreamID: upstream}, nil
}

// fax builds one fax object.
func (c *compiled) fax(v any) (Found, error) {
	if _, ok := v.(map[string]any); !ok {
		return Found{}, fmt.Errorf("%s is not a fax object", describe(v))
	}
	w := map[string]any{}
	raw, st, err := c.f["id"].lookup(v)
	switch {
	case err != nil:
		return Found{}, fmt.Errorf("fields.id: %w", err)
	case st == missing:
		return Found{}, fmt.Errorf("fields.id: %q is missing", c.m.Fields.ID)
	case st == null:
		return Found{}, fmt.Errorf("fields.id: %q is null", c.m.Fields.ID)
	}
	id, upstream, err := idOf(raw)
	if err != nil {
		return Found{}, fmt.Errorf("fields.id: %w", err)
	}
	w["id"] = id

	conv := converter{c: c, paths: c.f, src: v, dst: w, prefix: "fields."}
	conv.vocab("direction", c.m.DirectionMap, directions, false, true)
	if dir, ok := w["direction"].(string); ok && c.byDir[dir] != nil {
		conv.paths = c.byDir[dir]
	}
	conv.vocab("status", c.m.StatusMap, faxStatuses, false, true)
	conv.boolean("is_test")
	conv.integer("num_pages", false)
	conv.time("created_at", false)
	switch status, _ := w["status"].(string); {
	case !c.m.CompletedAtFinal || isFinal(status):
		conv.time("completed_at", true)
	case status != "":
		w["completed_at"] = nil // not done yet: the upstream's time is of its last change
	}
	conv.str("caller_id", true)
	conv.str("from_number", true)
	conv.str("to_number", true)
	conv.str("caller_name", true)
	if c.m.CostUnit == CostCurrency {
		if n, ok := convert(&conv, "cost", false, asCents); ok {
			w["cost"] = n
		}
	} else {
		conv.integer("cost", false)
	}
	conv.tags("tags")
	if tag := c.m.UpstreamIDTag; tag != "" && conv.err == nil {
		if _, full := w["status"].(string); full {
			tags, _ := w["tags"].(map[string]string)
			if tags == nil {
				tags = map[string]string{}
			}
			tags[tag] = upstream
			w["tags"] = tags
		}
	}
	conv.errorType("error_type")
	conv.integer("error_id", true)
	conv.str("error_message", true)
	if conv.err != nil {
		return Found{}, conv.err
	}
	if err := c.recipients(conv.paths, conv.prefix, v, w); err != nil {
		return Found{}, err
	}
	o := object(w)
	if upstream != strconv.FormatInt(o.Fax.ID, 10) {
		o.UpstreamID = upstream
	}
	return Found{Object: o, UpstreamID: upstream}, nil
}

// recipients converts the recipients array (or, with SingleRecipient, the one recipient) at
// paths["recipients"] into w["recipients"].
func (c *compiled) recipients(paths map[string]path, prefix string, v any, w map[string]any) error {
	p, ok := paths["recipients"]
	if !ok {
		return nil
	}
	raw, st, err := p.lookup(v)
	switch {
	case err != nil:
		return fmt.Errorf("%srecipients: %w", prefix, err)
	case st != found:
		return nil
	}
	list, ok := raw.([]any)
	switch {
	case c.m.SingleRecipient && ok:
		return fmt.Errorf("%srecipients: %s is not one recipient (single_recipient is set)", prefix, describe(raw))
	case c.m.SingleRecipient:
		list = []any{raw}
	case !ok:
		return fmt.Errorf("%srecipients: %s is not an array (set single_recipient if it is the one recipient)", prefix, describe(raw))
	}
	numPages, _ := w["num_pages"].(int)
	out := make([]map[string]any, 0, len(list))
	for i, item := range list {
		r := map[string]any{}
		conv := converter{c: c, paths: c.r, src: item, dst: r, prefix: "recipient."}
		conv.str("phone_number", false)
		if _, ok := r["phone_number"]; !ok && conv.err == nil {
			conv.err = fmt.Errorf("recipient.phone_number: %q is missing or null", c.m.Recipient.PhoneNumber)
		}
		conv.vocab("status", c.m.RecipientStatusMap, recipientStatuses, true, false)
		conv.integer("retry_count", false)
		conv.time("completed_at", true)
		conv.integer("bitrate", true)
		conv.integer("resolution", true)
		conv.errorType("error_type")
		conv.integer("error_id", true)
		conv.str("error_message", true)
		conv.integer(fax.ExtCurrentPage, false)
		if done, ok := convert(&conv, "pages_done", false, asInt); ok {
			r[fax.ExtCurrentPage] = pageOf(done, numPages, r["status"])
		}
		if conv.err != nil {
			return fmt.Errorf("recipient %d: %w", i, conv.err)
		}
		out = append(out, r)
	}
	w["recipients"] = out
	return nil
}

// pageOf is the page on the wire to a recipient that has fully sent done pages of numPages (0:
// unknown) and has the converted status: the next one while it transmits, else the last done.
func pageOf(done, numPages int, status any) int {
	s, _ := status.(string)
	if (s == fax.StatusInProgress || s == fax.RecipientCallActive) && (numPages == 0 || done < numPages) {
		return done + 1
	}
	return done
}

// asCents converts a decimal amount of a currency's main unit ("0.07", 0.07, "12") to integer
// cents, exactly, half a cent rounded away from zero.
func asCents(v any) (int, error) {
	text, ok := numberText(v)
	if !ok || text == "" || len(text) > 32 || strings.Trim(text, "0123456789.+-") != "" {
		return 0, fmt.Errorf("%s is not a decimal amount", describe(v))
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return 0, fmt.Errorf("%s is not a decimal amount", describe(v))
	}
	r.Mul(r, big.NewRat(100, 1))
	// Round half away from zero: add (or subtract) a half, then truncate toward zero.
	half := big.NewRat(1, 2)
	if r.Sign() < 0 {
		half.Neg(half)
	}
	r.Add(r, half)
	q := new(big.Int).Quo(r.Num(), r.Denom())
	if !q.IsInt64() || q.Int64() > math.MaxInt32 || q.Int64() < math.MinInt32 {
		return 0, fmt.Errorf("%s is out of range", describe(v))
	}
	return int(q.Int64()), nil
}

// converter copies mapped fields from a decoded upstream object into a v2.1 wire object,
// keeping the first error.
type converter struct {
	c      *compiled
	paths  map[string]path // field name → path: c.f, c.byDir[…] or c.r
	src    any
	dst    map[string]any
	prefix string // "fields." or "recipient."
	err    error
}

// get looks a field up. ok is false when the field is unmapped, missing, null in a
// non-nullable field (then absent), or after an error; a null of a nullable field is stored.
func (cv *converter) get(name string, nullable bool) (any, bool) {
	if cv.err != nil {
		return nil, false
	}
	p, ok := cv.paths[name]
	if !ok {
		return nil, false
	}
	v, st, err := p.lookup(cv.src)
	switch {
	case err != nil:
		cv.fail(name, err)
		return nil, false
	case st == null && nullable:
		cv.dst[name] = nil
		return nil, false
	case st != found:
		return nil, false
	}
	return v, true
}

func (cv *converter) fail(name string, err error) {
	if name == fax.ExtCurrentPage {
		name = "current_page"
	}
	cv.err = fmt.Errorf("%s%s: %w", cv.prefix, name, err)
}

// convert reads name and converts it with as; ok is false when it is absent, null (stored as
// null when nullable) or does not convert (the converter's error says why).
func convert[T any](cv *converter, name string, nullable bool, as func(any) (T, error)) (x T, ok bool) {
	v, ok := cv.get(name, nullable)
	if !ok {
		return x, false
	}
	x, err := as(v)
	if err != nil {
		cv.fail(name, err)
		return x, false
	}
	return x, true
}

func (cv *converter) str(name string, nullable bool) {
	if s, ok := convert(cv, name, nullable, asString); ok {
		cv.dst[name] = s
	}
}

func (cv *converter) integer(name string, nullable bool) {
	if n, ok := convert(cv, name, nullable, asInt); ok {
		cv.dst[name] = n
	}
}

func (cv *converter) boolean(name string) {
	if b, ok := convert(cv, name, false, asBool); ok {
		cv.dst[name] = b
	}
}

func (cv *converter) time(name string, nullable bool) {
	v, ok := cv.get(name, nullable)
	if !ok {
		return
	}
	if s, isStr := v.(string); isStr && s == "" {
		if nullable {
			cv.dst[name] = nil
		}
		return
	}
	t, err := cv.c.times.read(v)
	if err != nil {
		cv.fail(name, err)
		return
	}
	cv.dst[name] = t
}

// vocab translates a status or direction through vm; values outside vm must be in allowed.
// With emptyIsNull a translation to "" stores null.
func (cv *converter) vocab(name string, vm map[string]string, allowed []string, emptyIsNull, nullIsAbsent bool) {
	s, ok := convert(cv, name, !nullIsAbsent, asString)
	if !ok {
		return
	}
	if t, mapped := vm[s]; mapped {
		if t == "" && emptyIsNull {
			cv.dst[name] = nil
			return
		}
		s = t
	}
	if !slices.Contains(allowed, s) {
		cv.fail(name, fmt.Errorf("%q is neither in the map nor a v2.1 value", s))
		return
	}
	cv.dst[name] = s
}

// errorType translates an error type through ErrorTypeMap; unknown types pass unchanged.
func (cv *converter) errorType(name string) {
	s, ok := convert(cv, name, true, asString)
	if !ok {
		return
	}
	if t, mapped := cv.c.m.ErrorTypeMap[s]; mapped {
		if t == "" {
			cv.dst[name] = nil
			return
		}
		s = t
	}
	cv.dst[name] = s
}

// isFinal reports whether a v2.1 fax status is final.
func isFinal(status string) bool {
	return status == fax.StatusSuccess || status == fax.StatusFailure || status == fax.StatusPartialSuccess
}

// FileURLOf returns the URL of a fax's document in the answer of the status route (at Object, a
// fax object, or the first of an array of them), read at FileURL: the second step of fetching a
// document for a mapping with file_url. The URL is as the upstream wrote it, absolute or
// relative.
func (m *Mapping) FileURLOf(body []byte) (string, error) {
	if m.FileURL == "" {
		return "", errors.New("mapping: file_url is not set")
	}
	c, err := m.compile()
	if err != nil {
		return "", err
	}
	p, err := mustPath("file_url", m.FileURL, true)
	if err != nil {
		return "", fmt.Errorf("mapping: %w", err)
	}
	root, err := decodeJSON(body)
	if err != nil {
		return "", fmt.Errorf("mapping: status response is not JSON: %w", err)
	}
	v, st, err := c.object.lookup(root)
	if err == nil && st == found {
		if list, ok := v.([]any); ok && len(list) > 0 {
			v = list[0]
		}
		var u any
		if u, st, err = p.lookup(v); err == nil && st == found {
			if s, ok := u.(string); ok && s != "" {
				return s, nil
			}
			return "", fmt.Errorf("mapping: file_url: %s is not a URL", describe(u))
		}
	}
	if err != nil {
		return "", fmt.Errorf("mapping: file_url: %w", err)
	}
	return "", fmt.Errorf("mapping: file_url: the fax has no document URL at %q (yet)", m.FileURL)
}

// tags converts an object of scalars to tag name → text; null values are left out.
func (cv *converter) tags(name string) {
	v, ok := cv.get(name, false)
	if !ok {
		return
	}
	obj, isObj := v.(map[string]any)
	if !isObj {
		cv.fail(name, fmt.Errorf("%s is not an object", describe(v)))
		return
	}
	out := make(map[string]string, len(obj))
	for k, tv := range obj {
		switch x := tv.(type) {
		case nil:
		case bool:
			out[k] = strconv.FormatBool(x)
		case string:
			out[k] = x
		case json.Number:
			out[k] = string(x)
		default:
			cv.fail(name, fmt.Errorf("tag %q: %s is not a scalar", k, describe(tv)))
			return
		}
	}
	cv.dst[name] = out
}

// object builds the Object of a converted v2.1 wire object (see converter: strings, ints,
// booleans, nil for null, map[string]string tags, []map[string]any recipients), with the same
// fields, Full and CurrentPage that Phaxio gives the same object in a Phaxio body. w["id"] is the int64 id.
func object(w map[string]any) Object {
	var o Object
	f := &o.Fax
	f.ID, _ = w["id"].(int64)
	str := func(name string, dst *string) bool {
		v, ok := w[name].(string)
		if ok {
			*dst = v
		}
		return ok
	}
	integer := func(name string, dst *int) {
		if v, ok := w[name].(int); ok {
			*dst = v
		}
	}
	nullStr := func(name string, dst **string) {
		if v, ok := nullable[string](w, name); ok {
			*dst = v
		}
	}
	str("direction", &f.Direction)
	integer("num_pages", &f.NumPages)
	o.Full = str("status", &f.Status)
	if v, ok := w["is_test"].(bool); ok {
		f.IsTest = v
	}
	str("created_at", &f.CreatedAt)
	nullStr("caller_id", &f.CallerID)
	nullStr("from_number", &f.FromNumber)
	nullStr("completed_at", &f.CompletedAt)
	nullStr("caller_name", &f.CallerName)
	integer("cost", &f.Cost)
	if tags, ok := w["tags"].(map[string]string); ok {
		f.Tags = tags
	}
	if rs, ok := w["recipients"].([]map[string]any); ok {
		f.Recipients = make([]fax.Recipient, 0, len(rs))
		for _, wr := range rs {
			var r fax.Recipient
			r.PhoneNumber, _ = wr["phone_number"].(string)
			r.Status, _ = nullable[string](wr, "status")
			r.RetryCount, _ = wr["retry_count"].(int)
			r.CompletedAt, _ = nullable[string](wr, "completed_at")
			r.Bitrate, _ = nullable[int](wr, "bitrate")
			r.Resolution, _ = nullable[int](wr, "resolution")
			r.ErrorType, _ = nullable[string](wr, "error_type")
			r.ErrorID, _ = nullable[int](wr, "error_id")
			r.ErrorMessage, _ = nullable[string](wr, "error_message")
			f.Recipients = append(f.Recipients, r)
			if page, ok := wr[fax.ExtCurrentPage].(int); ok && r.PhoneNumber != "" {
				if o.CurrentPage == nil {
					o.CurrentPage = make(map[string]int, len(rs))
				}
				o.CurrentPage[r.PhoneNumber] = page
			}
		}
	}
	nullStr("to_number", &f.ToNumber)
	if v, ok := nullable[int](w, "error_id"); ok {
		f.ErrorID = v
	}
	nullStr("error_type", &f.ErrorType)
	nullStr("error_message", &f.ErrorMessage)
	return o
}

// nullable reads a nullable field of a converted wire object: a pointer to its value, nil for
// null; ok is false when the field is absent or of another type.
func nullable[T any](w map[string]any, name string) (*T, bool) {
	v, present := w[name]
	if !present {
		return nil, false
	}
	if v == nil {
		return nil, true
	}
	x, ok := v.(T)
	if !ok {
		return nil, false
	}
	return &x, true
}
