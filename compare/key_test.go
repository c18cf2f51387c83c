package compare

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func strKey(texts ...string) Key {
	k := Key{}
	for i, s := range texts {
		k.Fields = append(k.Fields, "f"+string(rune('0'+i)))
		k.Values = append(k.Values, v(KindString, s))
	}
	return k
}

func TestKeyStringRoundTrip(t *testing.T) {
	cases := []struct {
		key  Key
		want string
		why  string
	}{
		{strKey("42"), "42", "plain text is left alone"},
		{Key{Fields: []string{"id"}, Values: []Value{v(KindInt, "42")}}, "42", "the kind is not part of the text"},
		{strKey("a,b/c%d"), "a%2Cb%2Fc%25d", "',', '/' and '%' are escaped in a single field too"},
		{strKey("line\nbreak\x7f"), "line%0Abreak%7F", "control bytes are escaped"},
		{strKey("caf\u00e9 \u65e5\u672c"), "caf\u00e9 \u65e5\u672c", "valid UTF-8 and spaces stay readable"},
		{strKey("\xff\xfe"), "%FF%FE", "invalid UTF-8 is escaped, so the text is valid UTF-8"},
		{strKey("acme", "7"), "acme,7", "fields joined by ','"},
		{strKey("a,b", "c/d"), "a%2Cb,c%2Fd", "escaped separators inside fields"},
		{strKey("a", "b,c"), "a,b%2Cc", "differs from the next row: the split is unambiguous"},
		{strKey("a,b", "c"), "a%2Cb,c", "differs from the row above"},
		{strKey(""), "", "an empty single field"},
		{strKey("", ""), ",", "two empty fields"},
		{strKey("%2C"), "%252C", "an escape-looking text is itself escaped"},
	}
	seen := map[string]string{}
	for _, c := range cases {
		got := c.key.String()
		if got != c.want {
			t.Errorf("%s: String = %q, want %q", c.why, got, c.want)
			continue
		}
		if strings.Contains(got, "/") {
			t.Errorf("%s: %q contains '/', which would split a record key or URL path", c.why, got)
		}
		p, err := ParseKey(c.key.Fields, got)
		if err != nil {
			t.Errorf("%s: ParseKey(%q): %v", c.why, got, err)
			continue
		}
		for i, val := range p.Values {
			if val.Kind != KindString || val.Text != c.key.Values[i].Text {
				t.Errorf("%s: ParseKey(%q) value %d = %v, want string %q", c.why, got, i, val, c.key.Values[i].Text)
			}
		}
		if p.String() != got {
			t.Errorf("%s: ParseKey(%q).String() = %q: lookups by text would miss", c.why, got, p.String())
		}
		texts := fmt.Sprintf("%q", p.Values)
		if prev, dup := seen[got]; dup && prev != texts {
			t.Errorf("%s: %q also encodes the different texts %s", c.why, got, prev)
		}
		seen[got] = texts
	}
}

func TestParseKeyRejects(t *testing.T) {
	two := []string{"tenant_id", "id"}
	cases := []struct {
		fields  []string
		s       string
		wantErr string
		why     string
	}{
		{two, "acme", "1 values for 2 key fields", "too few parts"},
		{two, "a,b,c", "3 values for 2 key fields", "too many parts"},
		{[]string{"id"}, "a,b", "2 values for 1 key fields", "an unescaped ',' in a single-field key"},
		{[]string{"id"}, "%G1", `bad escape "%G1"`, "not hex"},
		{[]string{"id"}, "ab%4", "truncated escape", "escape cut short"},
		{nil, "x", "no key fields", "nothing to parse into"},
	}
	for _, c := range cases {
		if _, err := ParseKey(c.fields, c.s); err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: ParseKey(%q) err = %v, want %q", c.why, c.s, err, c.wantErr)
		}
	}
	// Lower-case hex, as a URL library may write it, still reads.
	if k, err := ParseKey([]string{"id"}, "a%2cb"); err != nil || k.String() != "a%2Cb" {
		t.Errorf("lower-case escape: %v, %v", k, err)
	}
}

func TestValueMarshalJSON(t *testing.T) {
	cases := []struct {
		val  Value
		want string
		why  string
	}{
		{Value{}, `null`, "Null"},
		{v(KindBool, "true"), `true`, "Bool"},
		{v(KindInt, "123456789012345678901234"), `123456789012345678901234`, "an Int is an exact JSON number of any size"},
		{v(KindInt, "-7"), `-7`, "negative Int"},
		{v(KindFloat, "1.5"), `1.5`, "Float"},
		{v(KindFloat, "1e+21"), `1e+21`, "'g' exponent form is valid JSON"},
		{v(KindFloat, "NaN"), `"NaN"`, "JSON has no NaN: a string instead of invalid output"},
		{v(KindFloat, "+Inf"), `"+Inf"`, "nor infinities"},
		{v(KindDecimal, "1234.50"), `"1234.50"`, "a string keeps the scale and escapes float parsing"},
		{v(KindString, "say \"hi\"\n<b>"), `"say \"hi\"\n<b>"`, "escaped as JSON, no HTML escaping"},
		{v(KindTime, microText), `"` + microText + `"`, "Time"},
		{v(KindDate, "2024-06-15"), `"2024-06-15"`, "Date"},
		{v(KindTimeOfDay, "12:30:00"), `"12:30:00"`, "TimeOfDay"},
		{v(KindBytes, "AAEC/w=="), `"AAEC/w=="`, "Bytes as base64"},
		{v(KindJSON, `{"a":[1,2]}`), `{"a":[1,2]}`, "JSON is embedded as is"},
		{v(KindJSON, `{`), `"{"`, "invalid JSON text falls back to a string"},
		{v(KindInt, "0x1"), `"0x1"`, "a non-canonical Int text falls back to a string"},
	}
	for _, c := range cases {
		// Direct: encoding/json would re-escape <, > and & on top.
		b, err := c.val.MarshalJSON()
		if err != nil || string(b) != c.want || !json.Valid(b) {
			t.Errorf("%s: Marshal(%v %q) = %s, %v; want %s", c.why, c.val.Kind, c.val.Text, b, err, c.want)
		}
	}
}

func TestKeyAndRowMarshalJSON(t *testing.T) {
	k := Key{Fields: []string{"tenant_id", "id"}, Values: []Value{v(KindString, "acme"), v(KindInt, "123456789012345678901234")}}
	b, err := json.Marshal(struct {
		Key Key `json:"key"`
	}{k})
	// Field order is key order, not alphabetical; the big id is exact.
	if want := `{"key":{"tenant_id":"acme","id":123456789012345678901234}}`; err != nil || string(b) != want {
		t.Errorf("key JSON = %s, %v; want %s", b, err, want)
	}
	if _, err := json.Marshal(Key{Fields: []string{"a"}}); err == nil {
		t.Error("a key with fields but no values must not marshal")
	}
	if b, _ := json.Marshal(Key{}); string(b) != "{}" {
		t.Errorf("zero key = %s, want {}", b)
	}
	row := Row{"b": v(KindDecimal, "1.50"), "a": v(KindInt, "1"), "c": {}}
	b, err = json.Marshal(row)
	if want := `{"a":1,"b":"1.50","c":null}`; err != nil || string(b) != want {
		t.Errorf("row JSON = %s, %v; want %s (sorted keys)", b, err, want)
	}
}

func TestKeyFieldsAreConfiguredOrder(t *testing.T) {
	r := mustRules(t, []string{"b", "a"}, nil, nil, nil, 0)
	if !slices.Equal(r.KeyFields(), []string{"b", "a"}) {
		t.Errorf("KeyFields = %v", r.KeyFields())
	}
}
