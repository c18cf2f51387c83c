package compare

import (
	"encoding/json"
	"math/big"
	"testing"
	"time"
)

// fuzzRaw builds one of the raw Go values a decoder can hand over.
func fuzzRaw(sel uint8, s string, i int64, f float64) any {
	switch sel % 16 {
	case 0:
		return s
	case 1:
		return json.Number(s)
	case 2:
		return f
	case 3:
		return i
	case 4:
		return []byte(s)
	case 5:
		return i&1 == 1
	case 6:
		return Decimal{Unscaled: big.NewInt(i), Scale: int32(sel/16) - 4}
	case 7:
		return time.Unix(i, int64(sel)*1e6)
	case 8:
		return Date(int32(i))
	case 9:
		return TimeOfDay(i)
	case 10:
		return json.RawMessage(s)
	case 11:
		return map[string]any{"n": json.Number(s), "s": s, "f": f, "a": []any{i, nil}}
	case 12:
		return uint64(i)
	case 13:
		return float32(f)
	case 14:
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return nil
		}
		return Decimal{Unscaled: n, Scale: int32(i % 40)}
	}
	return nil
}

// FuzzNormalizeValue checks that no input panics and that normalized values
// are a fixed point: normalizing a value's own text with the same configured
// type gives the value back. That is what makes "42" and 42 one key.
func FuzzNormalizeValue(f *testing.F) {
	f.Add("decimal(2)", uint8(0), "1234.5", int64(0), 0.0)
	f.Add("timestamp", uint8(3), "", int64(1718454600123456), 0.0)
	f.Add("", uint8(11), "1.50", int64(7), 2.5)
	f.Add("decimal(2)", uint8(0), "AeI6", int64(0), 0.0)
	f.Add("uuid", uint8(0), "3F2504E0-4F89-11D3-9A0C-0305E82C3301", int64(0), 0.0)
	f.Add("timestamp_ms", uint8(3), "", int64(86400000), 0.0)
	f.Add("timestamp_us", uint8(0), "1718454600123456", int64(0), 0.0)
	f.Fuzz(func(t *testing.T, typ string, sel uint8, s string, i int64, fl float64) {
		types := map[string]string{}
		ft, typeErr := ParseFieldType(typ)
		if typeErr == nil {
			types["c"] = typ
		}
		r, err := NewRules([]string{"c"}, nil, nil, types, 0)
		if err != nil {
			t.Fatal(err)
		}
		raw := fuzzRaw(sel, s, i, fl)
		got, err := r.NormalizeValue("c", raw)
		if err != nil {
			return
		}
		if b, _ := got.MarshalJSON(); !json.Valid(b) {
			t.Fatalf("%v %q: invalid JSON %s", got.Kind, got.Text, b)
		}
		k := Key{Fields: []string{"c"}, Values: []Value{got}}
		if p, err := ParseKey(k.Fields, k.String()); err != nil || p.Values[0].Text != got.Text {
			t.Fatalf("key %q does not round-trip: %v %v", got.Text, p, err)
		}
		if got.Kind == KindJSON {
			again, err := r.NormalizeValue("c", json.RawMessage(got.Text))
			if err != nil || again != got {
				t.Fatalf("canonical JSON %q is not a fixed point: %v %v", got.Text, again, err)
			}
		}
		if typeErr != nil || got.Kind == KindNull {
			return
		}
		if got.Kind != ft.Kind {
			t.Fatalf("type %s gave a %v", typ, got.Kind)
		}
		if got.Kind == KindTime && !parseableYear(got.Text) {
			return // RFC 3339 has four-digit years only
		}
		again, err := r.NormalizeValue("c", got.Text)
		if err != nil || again != got {
			t.Fatalf("%s %q re-normalizes to %v, %v", typ, got.Text, again, err)
		}
	})
}

func parseableYear(s string) bool {
	if len(s) < 5 || s[4] != '-' {
		return false
	}
	for i := range 4 {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
