package state

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recon-dev/recon/compare"
)

var updateSeeds = flag.Bool("update", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// fullKeyState sets every field of every type the codec writes, in a non-UTC
// zone: TestFullKeyStateSetsEveryField keeps it that way, so a field added to
// types.go without codec support fails the round trip instead of silently
// vanishing on disk.
func fullKeyState() *KeyState {
	zone := time.FixedZone("UTC+2", 2*3600)
	at := func(sec int) time.Time { return time.Date(2025, 3, 1, 12, 0, sec, 123456789, zone) }
	head := func(v uint64, deleted bool) *Head {
		return &Head{
			Version:   compare.Version{A: v, B: 7, C: 3},
			Digest:    compare.Digest{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, byte(v)},
			Deleted:   deleted,
			EventTime: at(1),
			SeenAt:    at(2),
			Partition: 5,
			Cols:      compare.Columns{{Name: "amount", Hash: 1 << 63}, {Name: "id", Hash: 1}, {Name: "note", Hash: 42}},
		}
	}
	return &KeyState{
		Key: compare.Key{
			Fields: []string{"tenant", "id"},
			Values: []compare.Value{{Kind: compare.KindString, Text: "acme"}, {Kind: compare.KindInt, Text: "-42"}},
		},
		Source:        head(1000, true),
		SourceChanges: 9,
		History: []HistoryEntry{
			{Version: compare.Version{A: 999}, Digest: compare.Digest{9}, Deleted: true, EventTime: at(3), SeenAt: at(4)},
			{Version: compare.Version{A: 1000, B: 1, C: 2}, Digest: compare.Digest{10}, Deleted: true, EventTime: at(5), SeenAt: at(6)},
		},
		SourceRow: compare.Row{
			"id":     {Kind: compare.KindInt, Text: "42"},
			"amount": {Kind: compare.KindDecimal, Text: "12.50"},
			"note":   {Kind: compare.KindString, Text: "ünïcode\x00and NUL"},
		},
		Targets: map[string]*TargetState{
			"warehouse": {
				Head:       head(77, true),
				Changes:    3,
				Lineage:    compare.Version{A: 998},
				Reflects:   compare.Version{A: 999},
				LocalWrite: true,
				Deadline:   at(30),
				Open: &Divergence{
					ID: "div-1", Kind: "lagging", OpenedAt: at(30), DetectedAt: at(31),
					SourceVersion: compare.Version{A: 1000}, RepairID: "rep-1",
				},
				Row: compare.Row{"id": {Kind: compare.KindInt, Text: "42"}, "status": {Kind: compare.KindString, Text: "old"}},
			},
			"cache": {Head: head(5, false), Changes: 1},
		},
	}
}

// typicalKeyState is what the benchmark and seed corpus use: a source head
// with 10 columns, 8 history entries, 1 target in sync.
func typicalKeyState() *KeyState {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var cols compare.Columns
	for i := range 10 {
		cols = append(cols, compare.Column{Name: fmt.Sprintf("column_%d", i), Hash: uint64(i) * 0x9e3779b97f4a7c15})
	}
	ks := &KeyState{
		Key:           compare.Key{Fields: []string{"id"}, Values: []compare.Value{{Kind: compare.KindInt, Text: "123456"}}},
		SourceChanges: 8,
	}
	for i := range 8 {
		ks.History = append(ks.History, HistoryEntry{
			Version:   compare.Version{A: 0x1a2b3c4d + uint64(i)*100},
			Digest:    compare.Digest{byte(i), 0xaa, 0xbb, 0xcc, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
			EventTime: t0.Add(time.Duration(i) * time.Second),
			SeenAt:    t0.Add(time.Duration(i)*time.Second + 5*time.Millisecond),
		})
	}
	last := ks.History[7]
	ks.Source = &Head{Version: last.Version, Digest: last.Digest, EventTime: last.EventTime, SeenAt: last.SeenAt, Partition: 3, Cols: cols}
	ks.Targets = map[string]*TargetState{"warehouse": {
		Head:     &Head{Version: compare.Version{A: 88001}, Digest: last.Digest, EventTime: last.EventTime.Add(time.Second), SeenAt: last.SeenAt.Add(time.Second), Partition: 3},
		Changes:  8,
		Reflects: last.Version,
	}}
	return ks
}

// toUTC rewrites every time.Time reachable from v in UTC: the codec's
// documented normalization, applied to an expectation.
func toUTC(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			toUTC(v.Elem())
		}
	case reflect.Struct:
		if t, ok := v.Interface().(time.Time); ok {
			v.Set(reflect.ValueOf(t.UTC()))
			return
		}
		for i := range v.NumField() {
			toUTC(v.Field(i))
		}
	case reflect.Slice:
		for i := range v.Len() {
			toUTC(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := v.MapIndex(k)
			if e.Kind() == reflect.Pointer {
				toUTC(e)
				continue
			}
			c := reflect.New(e.Type()).Elem()
			c.Set(e)
			toUTC(c)
			v.SetMapIndex(k, c)
		}
	}
}

// zeroFields lists the paths of zero values reachable from v.
func zeroFields(v reflect.Value, path string) []string {
	if v.IsZero() {
		return []string{path}
	}
	var out []string
	switch v.Kind() {
	case reflect.Pointer:
		out = zeroFields(v.Elem(), path)
	case reflect.Struct:
		if _, ok := v.Interface().(time.Time); ok {
			return nil
		}
		for i := range v.NumField() {
			out = append(out, zeroFields(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
	case reflect.Slice:
		for i := range v.Len() {
			out = append(out, zeroFields(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Map:
		// One fully set entry is enough; "cache" is the partial one.
		if e := v.MapIndex(reflect.ValueOf("warehouse")); e.IsValid() {
			out = zeroFields(e, path+"[warehouse]")
		}
	}
	return out
}

func TestFullKeyStateSetsEveryField(t *testing.T) {
	// compare.Version{B, C} and Value.Kind 0 are legitimately zero in places;
	// what matters is that every struct field is exercised somewhere.
	var missing []string
	for _, p := range zeroFields(reflect.ValueOf(fullKeyState()), "KeyState") {
		if !strings.HasSuffix(p, ".B") && !strings.HasSuffix(p, ".C") {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("fullKeyState leaves fields zero (add them to the fixture and the codec): %v", missing)
	}
}

func TestKeyStateRoundTrip(t *testing.T) {
	for name, ks := range map[string]*KeyState{
		"full":    fullKeyState(),
		"typical": typicalKeyState(),
		"empty":   {},
		"nil target and extreme values": {
			SourceChanges: ^uint64(0),
			Source:        &Head{Version: compare.Version{A: ^uint64(0), B: ^uint64(0), C: ^uint64(0)}, Partition: -1 << 31},
			Targets:       map[string]*TargetState{"t": nil, "u": {}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := appendKeyState(nil, ks)
			got, err := decodeKeyState(b)
			if err != nil {
				t.Fatal(err)
			}
			toUTC(reflect.ValueOf(ks))
			if !reflect.DeepEqual(got, ks) {
				t.Fatalf("round trip changed the state:\n got %+v\nwant %+v", got, ks)
			}
		})
	}
}

// TestKeyStateTimes pins the documented time decisions.
func TestKeyStateTimes(t *testing.T) {
	in := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("x", -7*3600))
	for _, c := range []struct {
		name   string
		in     time.Time
		want   time.Time
		reason string
	}{
		{"zone", in, in.UTC(), "times come back in UTC, same instant"},
		{"monotonic", time.Now(), time.Time{}, "the monotonic reading is dropped"},
		{"zero", time.Time{}, time.Time{}, "zero is stored as 0"},
		{"epoch", time.Unix(0, 0), time.Time{}, "0 also means the zero time"},
		{"far future", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 1<<63-1).UTC(), "clamped to the int64 range"},
		{"far past", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, -1<<63).UTC(), "clamped to the int64 range"},
	} {
		ks := &KeyState{Source: &Head{SeenAt: c.in}}
		got, err := decodeKeyState(appendKeyState(nil, ks))
		if err != nil {
			t.Fatal(err)
		}
		want := c.want
		if c.name == "monotonic" {
			want = c.in.Round(0).UTC()
		}
		if !reflect.DeepEqual(got.Source.SeenAt, want) {
			t.Errorf("%s: got %v, want %v (%s)", c.name, got.Source.SeenAt, want, c.reason)
		}
	}
}

func TestKeyStateEncodingIsDeterministic(t *testing.T) {
	want := appendKeyState(nil, fullKeyState())
	for range 50 {
		// Rebuilding the maps randomizes their iteration order.
		if got := appendKeyState(nil, fullKeyState()); !bytes.Equal(got, want) {
			t.Fatalf("encodings differ:\n%x\n%x", got, want)
		}
	}
	// A reused encoder (as in a Batch) gives the same bytes.
	var e encoder
	for range 3 {
		e.buf = e.buf[:0]
		e.keyState(fullKeyState())
		if !bytes.Equal(e.buf, want) {
			t.Fatalf("reused encoder differs")
		}
	}
}

func TestDecodeKeyStateRejectsCorruption(t *testing.T) {
	good := appendKeyState(nil, fullKeyState())
	for n := range len(good) {
		if _, err := decodeKeyState(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("prefix of %d/%d bytes: err = %v, want ErrCorrupt", n, len(good), err)
		}
	}
	for name, b := range map[string][]byte{
		"trailing byte":   append(bytes.Clone(good), 0),
		"unknown version": append([]byte{99}, good[1:]...),
		"huge count":      {keyStateCodecV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"varint overflow": {keyStateCodecV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		"non-minimal":     {keyStateCodecV1, 0x80, 0x00, 0, 0, 0, 0, 0, 0},
		"unknown flag":    {keyStateCodecV1, 0, 0, 0x80, 0, 0, 0, 0},
	} {
		if _, err := decodeKeyState(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	// Two columns in descending order, then twice the same: maps must
	// come strictly ascending.
	dup := []byte{keyStateCodecV1, 0, 0, 0, 0, 0, 2, 1, 'a', 0, 0, 1, 'a', 0, 0, 0}
	if _, err := decodeKeyState(dup); !errors.Is(err, ErrCorrupt) {
		t.Errorf("duplicate columns: err = %v, want ErrCorrupt", err)
	}
	desc := []byte{keyStateCodecV1, 0, 0, 0, 0, 0, 2, 1, 'b', 0, 0, 1, 'a', 0, 0, 0}
	if _, err := decodeKeyState(desc); !errors.Is(err, ErrCorrupt) {
		t.Errorf("descending columns: err = %v, want ErrCorrupt", err)
	}
	asc := []byte{keyStateCodecV1, 0, 0, 0, 0, 0, 2, 1, 'a', 0, 0, 1, 'b', 0, 0, 0}
	if _, err := decodeKeyState(asc); err != nil {
		t.Errorf("ascending columns: %v", err)
	}
}

func TestOutboxRecordRoundTrip(t *testing.T) {
	for _, r := range []OutboxRecord{
		{Seq: 7, Topic: "recon.repairs", Key: []byte("orders/wh/42"), Value: []byte(`{"id":"x"}`),
			Headers: []Header{{Key: "recon-id", Value: []byte("x")}, {Key: "empty", Value: []byte{}}, {Key: "nil"}}},
		{Seq: 8, Topic: "changelog", Key: []byte{}, Value: nil}, // tombstone: nil stays nil
	} {
		got, err := decodeOutboxRecord(r.Seq, appendOutboxRecord(nil, &r))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("got %#v, want %#v", got, r)
		}
	}
}

// seedStates are the real encodings the fuzz corpus starts from.
func seedStates() map[string]*KeyState {
	return map[string]*KeyState{
		"empty":   {},
		"full":    fullKeyState(),
		"typical": typicalKeyState(),
		"nil_target": {Key: compare.Key{Fields: []string{"id"}, Values: []compare.Value{{Kind: compare.KindInt, Text: "1"}}},
			Targets: map[string]*TargetState{"t": nil}},
	}
}

// TestFuzzSeedCorpus checks the committed seeds still decode (they are real
// encodings) and rewrites them with -update after a codec change.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeKeyState")
	for name, ks := range seedStates() {
		path := filepath.Join(dir, name)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", appendKeyState(nil, ks))
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestFuzzSeedCorpus -update)", err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a go test fuzz v1 file", path)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if _, err := decodeKeyState([]byte(s)); err != nil {
			t.Errorf("%s: seed no longer decodes: %v (run with -update)", path, err)
		}
	}
}

// FuzzDecodeKeyState: decoding never panics or over-allocates, and whatever
// decodes re-encodes to the very same bytes (the encoding is canonical).
func FuzzDecodeKeyState(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		ks, err := decodeKeyState(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if re := appendKeyState(nil, ks); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, re)
		}
	})
}
