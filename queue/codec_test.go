package queue

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// fullJob has every field of a Job set, times in UTC, in a fixed zone and zero.
func fullJob(id string) *Job {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)
	east := time.FixedZone("", 5*3600+30*60)
	return &Job{
		ID: id, EventID: "77.fax_completed", URL: "https://u:p@example.com/hook?x=1",
		Meta: Labels{{Name: "fax_id", Value: "-77"}, {Name: "event_type", Value: "fax_completed"}, {Name: "", Value: "ü\x00"}},
		Payload: Payload{
			Fields:  []Field{{Name: "fax", Value: `{"id":77,"ü":"\u0000"}`}, {Name: "event_type", Value: "fax_completed"}, {Name: "", Value: ""}},
			Files:   []File{{Name: "file", Filename: "fax-77.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4\x00\xff")}},
			Mail:    &Mail{Subject: "Fax 77", Text: "text\r\n", HTML: "<p>ü</p>"},
			Prepare: "faxes/77/file",
		},
		Chain: "77\x00https://example.com/hook", State: StateDead,
		FinishedAt: t0.Add(time.Hour).In(east), CreatedAt: t0, DueAt: t0.Add(2 * time.Hour),
		Attempts: []Attempt{
			{At: t0, Duration: 1500 * time.Millisecond, Status: 503, Error: "status 503", Body: "busy"},
			{At: t0.Add(time.Minute).In(east), Duration: -1, Error: "dial tcp: refused"},
		},
		LadderBase: 2,
		ReplayedAt: []time.Time{t0.Add(30 * time.Minute), {}},
	}
}

// asJSON is what the admin API would show of j: equal JSON means equal jobs, zone offsets
// included.
func asJSON(t *testing.T, j *Job) string {
	t.Helper()
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decodeRecords decodes a job from its head record and, if its body is apart, body.
func decodeRecords(head, body []byte, j *Job) error {
	rec, err := decodeHead(head, j)
	if err != nil {
		return err
	}
	if rec.apart {
		return decodeBody(body, "", j)
	}
	return decodeInline(head, rec, j)
}

// bigJob is fullJob with a file too large for its body to be inline.
func bigJob(id string) *Job {
	j := fullJob(id)
	j.Files[0].Data = make([]byte, inlineBodyMax)
	return j
}

func TestCodecRoundTrip(t *testing.T) {
	for _, in := range []*Job{fullJob("a"), {ID: "b"}, {ID: "c", Payload: Payload{Prepare: "faxes/1/file", Mail: &Mail{}}, State: StatePending}, bigJob("d")} {
		head, body, apart := encodeJob(in)
		if (apart != nil) != (in.ID == "d") || body.apart != (apart != nil) {
			t.Errorf("%s: body apart %v (record of %d bytes), want apart only for the large body", in.ID, body.apart, len(apart))
		}
		if got, want := bodyLen(in), len(encodeBody(in)); got != want {
			t.Errorf("%s: bodyLen %d, body record of %d bytes", in.ID, got, want)
		}
		var out Job
		out.ID = in.ID
		if err := decodeRecords(head, apart, &out); err != nil {
			t.Fatalf("%s: %v", in.ID, err)
		}
		// The binary layout gives what the JSON layout gave.
		var viaJSON Job
		if err := json.Unmarshal([]byte(asJSON(t, in)), &viaJSON); err != nil {
			t.Fatal(err)
		}
		if got, want := asJSON(t, &out), asJSON(t, &viaJSON); got != want {
			t.Errorf("%s: round trip\n got %s\nwant %s", in.ID, got, want)
		}
		// A head written back with the body as read keeps it, whatever the job holds now.
		var head2 Job
		rec, err := decodeHead(head, &head2)
		if err != nil {
			t.Fatal(err)
		}
		head2.ID, head2.State = in.ID, StateDelivered
		again := encodeHead(&head2, rec)
		out = Job{ID: in.ID}
		if err := decodeRecords(again, apart, &out); err != nil {
			t.Fatalf("%s written back: %v", in.ID, err)
		}
		viaJSON.State = StateDelivered
		if got, want := asJSON(t, &out), asJSON(t, &viaJSON); got != want {
			t.Errorf("%s: written back\n got %s\nwant %s", in.ID, got, want)
		}
	}
}

// A head keeps the job's chain flags.
func TestCodecChainFlags(t *testing.T) {
	j := fullJob("a")
	j.chainFlags = chainLinked | chainWaiter
	rec, _, _ := encodeJob(j)
	var out Job
	if _, err := decodeHead(rec, &out); err != nil || out.chainFlags != j.chainFlags || rec[0] != headVersion {
		t.Errorf("decoded flags %b (version %d, err %v), want %b", out.chainFlags, rec[0], err, j.chainFlags)
	}
	if asJSON(t, &out) == "" || out.EventID != j.EventID || len(out.ReplayedAt) != 2 {
		t.Errorf("fields lost: %s", asJSON(t, &out))
	}
}

// Truncated records and trailing bytes are errors, never panics: of the head when the body is
// apart, of the head or its inline body when it is not.
func TestCodecCorrupt(t *testing.T) {
	flagged := fullJob("b")
	flagged.chainFlags = chainLinked
	inline, _, _ := encodeJob(fullJob("a"))
	withFlags, _, _ := encodeJob(flagged)
	apartHead, _, apart := encodeJob(bigJob("c"))
	decodeWhole := func(v []byte, j *Job) error { return decodeRecords(v, nil, j) }
	decodeBare := func(v []byte, j *Job) error { return decodeBody(v, "", j) }
	for _, c := range []struct {
		name   string
		rec    []byte
		decode func([]byte, *Job) error
	}{
		{"head with its body", inline, decodeWhole},
		{"head with chain flags", withFlags, decodeWhole},
		{"head of a body apart", apartHead, decodeWhole},
		{"body", encodeBody(fullJob("a")), decodeBare},
		{"body apart", apart, decodeBare},
	} {
		step := 1
		if len(c.rec) > 1000 {
			step = 97
		}
		for n := 0; n < len(c.rec); n += step {
			if err := c.decode(c.rec[:n], &Job{}); !errors.Is(err, errCorrupt) {
				t.Fatalf("%s cut to %d of %d bytes: err %v, want errCorrupt", c.name, n, len(c.rec), err)
			}
		}
		if err := c.decode(append(c.rec[:len(c.rec):len(c.rec)], 0), &Job{}); !errors.Is(err, errCorrupt) {
			t.Fatalf("%s with a trailing byte: err %v, want errCorrupt", c.name, err)
		}
	}
}

// PutJobHead keeps the stored body whatever the job holds; PutJob stores a changed body, also
// when the caller changed the slices Job returned in place.
func TestPutJobHeadKeepsBody(t *testing.T) {
	b := openTestStore(t)
	in := fullJob("j1")
	in.State = ""
	update(t, b, func(tx Tx) error { _, err := tx.Enqueue(in); return err })
	update(t, b, func(tx Tx) error {
		j, err := tx.JobHead("j1")
		if err != nil {
			return err
		}
		if j.Fields != nil || j.Files != nil || j.Mail != nil || j.Prepare != "" || j.URL != in.URL || len(j.Attempts) != 2 || len(j.Meta) != 3 {
			t.Errorf("JobHead: %+v", j)
		}
		j.State, j.Attempts = StatePending, j.Attempts[:1]
		return tx.PutJobHead(j)
	})
	var got *Job
	update(t, b, func(tx Tx) (err error) { got, err = tx.Job("j1"); return err })
	want := *in
	want.State, want.Attempts = StatePending, in.Attempts[:1]
	if asJSON(t, got) != asJSON(t, &want) {
		t.Fatalf("after PutJobHead\n got %s\nwant %s", asJSON(t, got), asJSON(t, &want))
	}
	update(t, b, func(tx Tx) error {
		j, err := tx.Job("j1")
		if err != nil {
			return err
		}
		j.Fields[0].Value = "changed in place"
		j.Files[0].Data[0] = '!'
		return tx.PutJob(j)
	})
	update(t, b, func(tx Tx) (err error) { got, err = tx.Job("j1"); return err })
	if got.Fields[0].Value != "changed in place" || got.Files[0].Data[0] != '!' {
		t.Fatalf("PutJob lost a body change: %+v", got)
	}
	err := b.Update(func(tx Tx) error { return tx.PutJobHead(&Job{ID: "nope", State: StatePending}) })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("PutJobHead of a missing job: %v, want ErrNotFound", err)
	}
}

// update runs fn, failing the test on an error other than ErrNotFound.
func update(t *testing.T, b *Badger, fn func(Tx) error) {
	t.Helper()
	if err := b.Update(fn); err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

type senderFunc func(context.Context, *Job) Result

func (f senderFunc) Send(ctx context.Context, j *Job) Result { return f(ctx, j) }

// JobHeads and FinishedHeads list the same jobs as Jobs and Finished, with every head field and
// without bodies (a received fax's PDF is not read to count jobs or purge them).
func TestHeadListingsSkipBodies(t *testing.T) {
	b := openTestStore(t)
	done := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, id := range []string{"a", "b", "c"} {
		j := fullJob(id)
		j.State, j.Chain = "", ""
		update(t, b, func(tx Tx) error { _, err := tx.Enqueue(j); return err })
		update(t, b, func(tx Tx) error {
			j, err := tx.Job(id)
			if err != nil {
				return err
			}
			j.State, j.FinishedAt = StateDead, done
			return tx.PutJob(j)
		})
	}
	var full, heads, fin, finHeads []*Job
	err := b.View(func(tx Tx) error {
		collect := func(dst *[]*Job) func(*Job) bool {
			return func(j *Job) bool { *dst = append(*dst, j); return true }
		}
		return errors.Join(tx.Jobs(collect(&full)), tx.JobHeads(collect(&heads)),
			tx.Finished(StateDead, time.Time{}, collect(&fin)), tx.FinishedHeads(StateDead, time.Time{}, collect(&finHeads)))
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(full) != 3 || len(heads) != 3 || len(fin) != 3 || len(finHeads) != 3 {
		t.Fatalf("listed %d, %d heads, %d finished, %d finished heads; want 3 each", len(full), len(heads), len(fin), len(finHeads))
	}
	for i := range full {
		for _, h := range []*Job{heads[i], finHeads[i]} {
			if h.Fields != nil || h.Files != nil || h.Mail != nil || h.Prepare != "" {
				t.Errorf("head of %s has a body: %+v", h.ID, h)
			}
			want := *full[i]
			want.Payload = Payload{}
			if asJSON(t, h) != asJSON(t, &want) {
				t.Errorf("head of %s\n got %s\nwant %s", h.ID, asJSON(t, h), asJSON(t, &want))
			}
		}
		if len(full[i].Files) != 1 || len(fin[i].Files) != 1 {
			t.Errorf("Jobs/Finished lost the body of %s", full[i].ID)
		}
	}
}
