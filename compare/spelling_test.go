package compare

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func names(row Row) []string {
	var out []string
	for c := range row {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// TestSystemRow: a repair's row comes out in the target's own column names.
// Each step feeds the target's rules one row (or key) as the target sends
// it, then renders the same dataset row; why says why the names are right.
func TestSystemRow(t *testing.T) {
	dataset := Row{"id": v(KindInt, "1"), "amount": v(KindString, "1.00"), "note": {}, "only_source": v(KindInt, "2")}
	steps := []struct {
		send map[string]any // a target row through Normalize; nil: nothing sent
		key  map[string]any // a target key through Key
		want []string
		why  string
	}{
		{nil, nil, []string{"Order_ID", "amount", "note", "only_source"},
			"before any row: the renamed column as the config spells it, the rest in lower case"},
		{map[string]any{"ORDER_ID": 1, "AMOUNT": "1.00", "Note": nil}, nil, []string{"AMOUNT", "Note", "ORDER_ID", "only_source"},
			"as the target spelled them; a column it never sent stays lower case"},
		{map[string]any{"order_id": 1, "amount": "1.00", "Note": nil}, nil, []string{"Note", "amount", "only_source", "order_id"},
			"names the target sends in lower case now are lower case again, even where the config spells them otherwise"},
		{nil, map[string]any{"Order_Id": 1}, []string{"Note", "Order_Id", "amount", "only_source"},
			"a key struct is the target's spelling too"},
	}
	r, err := NewRules([]string{"ID"}, map[string]string{"Order_ID": "ID"}, nil, nil, 0, CaseInsensitive(true))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		if s.send != nil {
			if _, _, err := r.Normalize(s.send); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		if s.key != nil {
			if _, err := r.Key(s.key); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		got := r.SystemRow(dataset)
		if fmt.Sprint(names(got)) != fmt.Sprint(s.want) {
			t.Errorf("step %d (%s): names %v, want %v", i, s.why, names(got), s.want)
		}
		if len(got) != len(dataset) {
			t.Errorf("step %d: %d columns, want %d", i, len(got), len(dataset))
		}
	}

	// Byte for byte, only the rename is inverted, exactly.
	exact, err := NewRules([]string{"id"}, map[string]string{"order_id": "id"}, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := exact.Normalize(map[string]any{"order_id": 1, "Amount": "1.00"}); err != nil {
		t.Fatal(err)
	}
	if got := names(exact.SystemRow(Row{"id": v(KindInt, "1"), "Amount": v(KindString, "1.00")})); fmt.Sprint(got) != "[Amount order_id]" {
		t.Errorf("case sensitive: names %v, want [Amount order_id]", got)
	}
	plain, _ := NewRules([]string{"id"}, nil, nil, nil, 0)
	row := Row{"id": v(KindInt, "1")}
	if got := plain.SystemRow(row); len(got) != 1 || got["id"] != row["id"] {
		t.Errorf("no rename: %v", got)
	}
}

// Spellings are learned by the decode workers while the engine renders
// repairs: no race, and every reader sees a whole map.
func TestSystemRowConcurrent(t *testing.T) {
	r, err := NewRules([]string{"id"}, nil, nil, nil, 0, CaseInsensitive(true))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				name := "AMOUNT"
				if (i+w)%2 == 0 {
					name = "Amount"
				}
				if _, _, err := r.Normalize(map[string]any{"ID": 1, name: "1"}); err != nil {
					t.Error(err)
					return
				}
				got := r.SystemRow(Row{"id": v(KindInt, "1"), "amount": v(KindString, "1")})
				if len(got) != 2 || (got["AMOUNT"].Text == "" && got["Amount"].Text == "") {
					t.Errorf("row %v", got)
					return
				}
			}
		})
	}
	wg.Wait()
}
