package compare

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func foldRules(t testing.TB, key []string, rename map[string]string, ignore []string, types map[string]string, on bool) *Rules {
	t.Helper()
	r, err := NewRules(key, rename, ignore, types, 0, CaseInsensitive(on))
	if err != nil {
		t.Fatalf("NewRules: %v", err)
	}
	return r
}

// compare.case_insensitive: a Postgres source in lower case and a target that
// shouts its column names agree on key, row and digest; without the setting
// they do not.
func TestCaseInsensitiveNames(t *testing.T) {
	h := NewHasher(testDigestKey)
	// Settings in mixed case too: they are folded like the rows.
	key := []string{"Tenant_ID", "ID"}
	ignore := []string{"Updated_At"}
	types := map[string]string{"AMOUNT": "decimal(2)", "Created_At": "timestamp", "tenant_id": "int"}
	source := map[string]any{
		"tenant_id": json.Number("7"), "id": json.Number("42"), "amount": "AeI6",
		"created_at": json.Number("1718454600123000"), "updated_at": json.Number("1"), "note": "x",
	}
	target := map[string]any{
		"TENANT": "7", "ORDER_ID": json.Number("42"), "Amount": "1234.50",
		"CREATED_AT": "2024-06-15 12:30:00.123", "UPDATED_AT": "whenever", "Note": "x",
	}
	tgtRename := map[string]string{"Tenant": "Tenant_Id", "order_id": "id"}

	for _, on := range []bool{true, false} {
		src := foldRules(t, key, nil, ignore, types, on)
		tgt := foldRules(t, key, tgtRename, ignore, types, on)
		srow, _, err1 := src.Normalize(source)
		trow, _, err2 := tgt.Normalize(target)
		if err1 != nil || err2 != nil {
			t.Fatalf("case_insensitive %v: %v, %v", on, err1, err2)
		}
		same := h.RowDigest(srow) == h.RowDigest(trow)
		sk, skErr := src.Key(source)
		tk, tkErr := tgt.Key(target)
		if !on {
			if same {
				t.Error("without case_insensitive, \"Amount\" and \"amount\" must be different columns")
			}
			if !errors.Is(skErr, ErrMissingKeyField) || !errors.Is(tkErr, ErrMissingKeyField) {
				t.Errorf("without case_insensitive, key field \"ID\" is no column of either side: %v, %v", skErr, tkErr)
			}
			continue
		}
		if !same {
			t.Errorf("folded rows differ:\n source %v\n target %v", srow, trow)
		}
		if skErr != nil || tkErr != nil || sk.String() != "7,42" || tk.String() != "7,42" {
			t.Errorf("keys %q / %q (%v, %v), want 7,42", sk.String(), tk.String(), skErr, tkErr)
		}
		if !slices.Equal(tk.Fields, []string{"tenant_id", "id"}) {
			t.Errorf("key fields %v, want the folded names", tk.Fields)
		}
		for col := range trow {
			if col != strings.ToLower(col) {
				t.Errorf("row column %q is not folded", col)
			}
		}
	}

	r := foldRules(t, []string{"id"}, nil, nil, map[string]string{"Amount": "decimal(2)"}, true)
	if got, err := r.NormalizeValue("AMOUNT", "1.5"); err != nil || got != v(KindDecimal, "1.50") {
		t.Errorf("NormalizeValue(AMOUNT) = %v, %v; want the type of Amount", got, err)
	}
	// A row that sends two spellings of one column is ambiguous.
	if _, _, err := r.Normalize(map[string]any{"id": 1, "Amount": "1", "amount": "2"}); err == nil ||
		!strings.Contains(err.Error(), `column "amount": both "Amount" and "amount" are sent`) {
		t.Errorf("two spellings: err = %v", err)
	}
	if _, err := r.Key(map[string]any{"ID": 1, "id": 2}); err == nil || !strings.Contains(err.Error(), `both "ID" and "id"`) {
		t.Errorf("two spellings of the key: err = %v", err)
	}
}

// Settings that differ only in case would merge once folded: reported.
func TestCaseInsensitiveSettingsRejected(t *testing.T) {
	cases := []struct {
		key     []string
		rename  map[string]string
		ignore  []string
		types   map[string]string
		wantErr string
	}{
		{[]string{"id", "ID"}, nil, nil, nil, `key: field "id" listed twice`},
		{[]string{"id"}, nil, []string{"Id"}, nil, `key: field "id" is also ignored`},
		{[]string{"id"}, nil, nil, map[string]string{"Amount": "float", "amount": "decimal(2)"}, `types: "Amount" and "amount" are the same column ignoring case`},
		{[]string{"id"}, map[string]string{"Order_Id": "id", "order_id": "legacy"}, nil, nil, `rename: "Order_Id" and "order_id" are the same column ignoring case`},
		{[]string{"id"}, map[string]string{"a": "X", "b": "x"}, nil, nil, `rename: "a" and "b" both map to "x"`},
	}
	for _, c := range cases {
		_, err := NewRules(c.key, c.rename, c.ignore, c.types, 0, CaseInsensitive(true))
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("err = %v, want %q", err, c.wantErr)
		}
		// Byte for byte, the same settings are fine (bar the rename onto one name).
		if _, err := NewRules(c.key, c.rename, c.ignore, c.types, 0); err != nil && !strings.Contains(c.wantErr, "both map") {
			t.Errorf("without case_insensitive: %v", err)
		}
	}
}
