package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
)

var testDigestKey = []byte("recon-test-digest-key")

func decodeRow(t testing.TB, r *Rules, js string) Row {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(js)))
	d.UseNumber()
	var raw map[string]any
	if err := d.Decode(&raw); err != nil {
		t.Fatal(err)
	}
	row, _, err := r.Normalize(raw)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

func TestRowDigest(t *testing.T) {
	h := NewHasher(testDigestKey)
	base := Row{"id": v(KindInt, "42"), "status": v(KindString, "paid"), "note": v(KindString, "")}
	with := func(col string, val Value) Row {
		r := maps.Clone(base)
		r[col] = val
		return r
	}
	without := func(col string) Row {
		r := maps.Clone(base)
		delete(r, col)
		return r
	}
	d0 := h.RowDigest(base)
	cases := []struct {
		row  Row
		same bool
		why  string
	}{
		{maps.Clone(base), true, "the same row gives the same digest"},
		{with("id", v(KindInt, "43")), false, "a different key value"},
		{with("status", v(KindString, "paid ")), false, "a single column change"},
		{with("status", v(KindBytes, "paid")), false, "the same text of another kind"},
		{with("id", v(KindString, "42")), false, "String \"42\" is not Int 42 in a row (keys are another matter)"},
		{with("note", Value{}), false, "null is not the empty string"},
		{without("note"), false, "an absent column is not an empty one"},
		{Row{"id": v(KindInt, "42"), "status": v(KindString, ""), "note": v(KindString, "paid")}, false, "a value moved between columns"},
		{Row{"id": v(KindInt, "42"), "statu": v(KindString, "spaid"), "note": v(KindString, "")}, false, "a boundary moved between name and value"},
		{with("extra", Value{}), false, "an extra null column"},
	}
	for _, c := range cases {
		if got := h.RowDigest(c.row); (got == d0) != c.same {
			t.Errorf("%s: digest %s vs base %s, same = %v", c.why, got, d0, !c.same)
		}
	}
	if d0.IsZero() {
		t.Error("a digest must not be the zero (absent) digest")
	}
	if NewHasher([]byte("another key")).RowDigest(base) == d0 {
		t.Error("the digest must depend on the key")
	}
	// Digests are persisted and published: pin the format. A change here
	// needs a new digestFormat and a migration note.
	if got, want := d0.String(), goldenDigest; got != want {
		t.Errorf("golden digest = %s, want %s", got, want)
	}
}

// goldenDigest was computed from the documented serialization by a separate
// implementation (Python hmac + a hand-written XXH64), not copied from this one.
const goldenDigest = "ba4e22aed7afc1baede57c1e70585bf7"

func TestDigestIgnoresFieldOrderAndIgnoredColumns(t *testing.T) {
	r := mustRules(t, []string{"id"}, nil, []string{"updated_at"}, map[string]string{"amount": "decimal(2)"}, 0)
	h := NewHasher(testDigestKey)
	a := h.RowDigest(decodeRow(t, r, `{"id": 1, "amount": "5.5", "status": "x", "updated_at": 1}`))
	b := h.RowDigest(decodeRow(t, r, `{"updated_at": 2, "status": "x", "amount": 5.50, "id": 1}`))
	if a != b {
		t.Errorf("field order, the representation of 5.50 and an ignored column changed the digest: %s vs %s", a, b)
	}
}

func TestDigestOfColumns(t *testing.T) {
	h := NewHasher(testDigestKey)
	row := Row{"id": v(KindInt, "1"), "body": v(KindString, "long toasted text"), "n": v(KindFloat, "1.5")}
	cols := h.Columns(row)
	if h.Digest(cols) != h.RowDigest(row) {
		t.Error("RowDigest must equal Digest(Columns(row))")
	}
	for name, val := range row {
		if got, ok := cols.Get(name); !ok || got != ColumnHash(val) {
			t.Errorf("column %q hash differs from ColumnHash", name)
		}
	}
	if !slices.IsSortedFunc(cols, func(a, b Column) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Columns must come sorted by name")
	}
	// An update that did not re-send the TOAST column: merge its previous hash.
	update := Row{"id": v(KindInt, "1"), "n": v(KindFloat, "1.5")}
	merged := h.Columns(update)
	body, _ := cols.Get("body")
	merged = merged.With("body", body)
	if h.Digest(merged) != h.RowDigest(row) {
		t.Error("a row completed with previous column hashes must digest like the full row")
	}
	if h.Digest(nil) != h.RowDigest(Row{}) || h.Digest(nil).IsZero() {
		t.Error("the empty row has one non-zero digest")
	}
}

func TestColumnHashSeparatesKindAndText(t *testing.T) {
	vals := []Value{{}, v(KindString, ""), v(KindInt, "42"), v(KindString, "42"), v(KindFloat, "42"), v(KindDecimal, "42"), v(KindString, "4"), v(KindString, "420")}
	seen := map[uint64]Value{}
	for _, val := range vals {
		hash := ColumnHash(val)
		if prev, dup := seen[hash]; dup {
			t.Errorf("%v and %v share a column hash", prev, val)
		}
		seen[hash] = val
	}
}

// Run with -race: one Hasher is shared by every partition worker.
func TestHasherConcurrentUse(t *testing.T) {
	h := NewHasher(testDigestKey)
	rows := make([]Row, 32)
	want := make([]Digest, len(rows))
	for i := range rows {
		rows[i] = Row{"id": v(KindInt, fmt.Sprint(i)), "pad": v(KindString, string(make([]byte, i*100)))}
		want[i] = h.RowDigest(rows[i])
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 200 {
				i := (g + n) % len(rows)
				if got := h.RowDigest(rows[i]); got != want[i] {
					t.Errorf("row %d: concurrent digest %s, want %s", i, got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
}

// benchRaw is a typical 10-column row as debezium-json with UseNumber decodes it.
func benchRaw() map[string]any {
	return map[string]any{
		"id":         json.Number("1234567890"),
		"tenant_id":  "acme-corp",
		"amount":     "1234.5",
		"currency":   "EUR",
		"status":     "paid",
		"quantity":   json.Number("3"),
		"price":      json.Number("411.5"),
		"active":     true,
		"created_at": "2024-06-15T12:30:00.123456Z",
		"updated_at": json.Number("1718454600123456"),
	}
}

func benchRules(b *testing.B) *Rules {
	return mustRules(b, []string{"tenant_id", "id"}, nil, nil,
		map[string]string{"amount": "decimal(2)", "created_at": "timestamp", "updated_at": "timestamp"}, 0)
}

func BenchmarkNormalizeRowDigest(b *testing.B) {
	r, h, raw := benchRules(b), NewHasher(testDigestKey), benchRaw()
	b.ReportAllocs()
	for b.Loop() {
		row, _, err := r.Normalize(raw)
		if err != nil {
			b.Fatal(err)
		}
		_ = h.RowDigest(row)
	}
}

func BenchmarkNormalize(b *testing.B) {
	r, raw := benchRules(b), benchRaw()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Normalize(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRowDigest(b *testing.B) {
	r, h := benchRules(b), NewHasher(testDigestKey)
	row, _, err := r.Normalize(benchRaw())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = h.RowDigest(row)
	}
}

func BenchmarkRowDigestParallel(b *testing.B) {
	r, h := benchRules(b), NewHasher(testDigestKey)
	row, _, err := r.Normalize(benchRaw())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = h.RowDigest(row)
		}
	})
}
