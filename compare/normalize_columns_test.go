package compare

import (
	"encoding/json"
	"reflect"
	"testing"
)

// NormalizeColumns is Columns(Normalize(raw)) without the row, for every
// rule Normalize applies: renames, ignores, types, placeholders, errors.
func TestNormalizeColumnsMatchesNormalize(t *testing.T) {
	rules, err := NewRules([]string{"id"}, map[string]string{"order_id": "id"}, []string{"loaded_at"},
		map[string]string{"amount": "decimal(2)", "created_at": "timestamp", "ref": "uuid"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHasher([]byte("0123456789abcdef"))
	for _, raw := range []map[string]any{
		{"order_id": json.Number("7"), "amount": "12.5", "created_at": "2024-06-15T12:30:00Z", "note": nil},
		{"order_id": json.Number("7"), "amount": "AeI6", "ref": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "loaded_at": "x"},
		{"order_id": json.Number("7"), "note": UnavailablePlaceholder, "big": json.Number("18446744073709551615")},
		{"order_id": json.Number("7"), "id": json.Number("8")}, // two columns onto one: an error
		{"order_id": json.Number("7"), "amount": "not a number"},
		{},
	} {
		row, unch, err1 := rules.Normalize(raw)
		cols, unch2, err2 := rules.NormalizeColumns(raw)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("%v: Normalize error %v, NormalizeColumns error %v", raw, err1, err2)
		}
		if err1 != nil {
			continue
		}
		if want := h.Columns(row); !reflect.DeepEqual(cols, want) || !reflect.DeepEqual(unch, unch2) {
			t.Errorf("%v: columns %v unchanged %v; want %v %v", raw, cols, unch2, want, unch)
		}
	}
}
