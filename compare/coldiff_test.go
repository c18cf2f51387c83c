package compare

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A conflict's rationale names the columns that differ, and above all those
// that exist on one side only: a schema-evolution difference is reported, not
// silently ignored.
func TestConflictRationaleNamesColumns(t *testing.T) {
	cols := func(kv ...any) Columns {
		var c Columns
		for i := 0; i < len(kv); i += 2 {
			c = c.With(kv[i].(string), uint64(kv[i+1].(int)))
		}
		return c
	}
	var wide, wideTgt Columns
	for i := range 11 {
		wide = wide.With(fmt.Sprintf("c%02d", i), uint64(i))
		wideTgt = wideTgt.With(fmt.Sprintf("c%02d", i), uint64(100+i))
	}
	cases := []struct {
		src, tgt Columns
		want     string // the rationale's column part; "" for none
		why      string
	}{
		{cols("amount", 1, "discount", 2, "id", 3), cols("amount", 9, "id", 3),
			`; column "discount" only in the source; columns differ: amount`, "a column added on the source, plus a changed value"},
		{cols("amount", 1, "id", 3), cols("amount", 1, "id", 3, "loaded_at", 4),
			`; column "loaded_at" only in the target`, "a target-only column the config does not ignore is the whole difference"},
		{cols("Amount", 1, "id", 3), cols("amount", 1, "id", 3),
			`; column "Amount" only in the source; column "amount" only in the target`, "names that differ in case, without case_insensitive"},
		{cols("a", 1, "b", 2, "id", 3), cols("c", 1, "d", 2, "id", 3),
			`; columns "a", "b" only in the source; columns "c", "d" only in the target`, "a rename the config lacks"},
		{cols("amount", 1, "id", 3, "status", 5), cols("amount", 2, "id", 3, "status", 6),
			"; columns differ: amount, status", "only values differ"},
		{wide, wideTgt, "; columns differ: c00, c01, c02, c03, c04, c05, c06, c07 and 3 more", "a wide row is cut short"},
		{nil, cols("id", 3), "", "the source's columns are unknown: nothing reliable to say"},
		{cols("id", 3), nil, "", "the target's columns are unknown"},
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range cases {
		p := Pair{
			Source:     []SourceVersion{{Version: Version{A: 1}, Digest: Digest{1}, SeenAt: t0}},
			SourceCols: c.src,
			Target:     &TargetRow{Version: Version{A: 5}, Digest: Digest{2}, SeenAt: t0, Cols: c.tgt},
		}
		v := Classify(p)
		if v.Kind != Conflict {
			t.Fatalf("%s: kind %s, want conflict", c.why, v.Kind)
		}
		const base = "equals no known source version; the source head is 1 (digest 01000000000000000000000000000000)"
		if !strings.HasSuffix(v.Rationale, base+c.want) {
			t.Errorf("%s:\n got  %q\n want it to end with %q", c.why, v.Rationale, base+c.want)
		}
	}
}

// End to end through Normalize and the hasher: the source gained a nullable
// column (schema evolution) that the target does not have yet; every other
// value is the same in another encoding. The verdict says exactly that.
func TestSchemaEvolutionConflictRationale(t *testing.T) {
	h := NewHasher(testDigestKey)
	types := map[string]string{"amount": "decimal(2)", "created_at": "timestamp"}
	src := mustRules(t, []string{"id"}, nil, nil, types, 0)
	tgt := mustRules(t, []string{"id"}, map[string]string{"order_id": "id"}, nil, types, 0)
	srow, _, err := src.Normalize(map[string]any{
		"id": json.Number("42"), "amount": "AeI6", "created_at": json.Number("1718454600123456"),
		"discount": nil, // added to the source table; null in existing rows
	})
	if err != nil {
		t.Fatal(err)
	}
	trow, _, err := tgt.Normalize(map[string]any{
		"order_id": json.Number("42"), "amount": "1234.50", "created_at": "2024-06-15T12:30:00.123456Z",
	})
	if err != nil {
		t.Fatal(err)
	}
	sc, tc := h.Columns(srow), h.Columns(trow)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := Pair{
		Source:     []SourceVersion{{Version: Version{A: 100}, Digest: h.Digest(sc), SeenAt: t0}},
		SourceCols: sc,
		Target:     &TargetRow{Version: Version{A: 7}, Digest: h.Digest(tc), SeenAt: t0, Cols: tc},
	}
	if st := Assess(p, time.Second); st.InSync {
		t.Fatal("a column only the source has must keep the pair out of sync")
	}
	v := Classify(p)
	if v.Kind != Conflict || !strings.HasSuffix(v.Rationale, `; column "discount" only in the source`) {
		t.Errorf("verdict %s %q; want a conflict naming only the new column", v.Kind, v.Rationale)
	}
}
