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

// The canonical key of every key shape a platform team meets: one logical key
// gives one String whatever the format and spelling, and different keys
// never share one.
func TestKeyShapes(t *testing.T) {
	const id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	intKey := mustRules(t, []string{"id"}, nil, nil, map[string]string{"id": "int"}, 0)
	strKeyRules := mustRules(t, []string{"code"}, nil, nil, map[string]string{"code": "string"}, 0)
	uuidKey := mustRules(t, []string{"id"}, nil, nil, map[string]string{"id": "uuid"}, 0)
	untypedUUID := mustRules(t, []string{"id"}, nil, nil, nil, 0)
	composite := mustRules(t, []string{"tenant_id", "id"}, map[string]string{"TenantId": "tenant_id"}, nil,
		map[string]string{"tenant_id": "int", "id": "int"}, 0)
	mixed := mustRules(t, []string{"tenant", "id"}, nil, nil, map[string]string{"id": "uuid"}, 0)
	cases := []struct {
		r    *Rules
		raw  map[string]any
		want string
		why  string
	}{
		{intKey, map[string]any{"id": json.Number("42")}, "42", "JSON number"},
		{intKey, map[string]any{"id": "42"}, "42", `"42" and 42 for an int column are one key`},
		{intKey, map[string]any{"id": int64(42)}, "42", "Avro long"},
		{intKey, map[string]any{"id": json.Number("-7")}, "-7", "negative id"},
		{intKey, map[string]any{"id": "-7"}, "-7", "negative id as text"},
		{intKey, map[string]any{"id": int32(-7)}, "-7", "negative Avro int"},
		{intKey, map[string]any{"id": -7.0}, "-7", "negative float64 from a decoder without UseNumber"},
		{intKey, map[string]any{"id": json.Number("0")}, "0", "zero id"},
		{intKey, map[string]any{"id": "-0"}, "0", "-0 is zero"},
		{intKey, map[string]any{"id": "000"}, "0", "leading zeros are not part of the key"},
		{intKey, map[string]any{"id": int64(0)}, "0", "zero Avro long"},
		{intKey, map[string]any{"id": json.Number("9223372036854775807")}, "9223372036854775807", "max bigint stays exact"},
		{intKey, map[string]any{"id": "-9223372036854775808"}, "-9223372036854775808", "min bigint stays exact"},
		{strKeyRules, map[string]any{"code": "ABC-1"}, "ABC-1", "string key kept as sent"},
		{strKeyRules, map[string]any{"code": "abc-1"}, "abc-1", "string keys keep their case: another key"},
		{strKeyRules, map[string]any{"code": json.Number("0042")}, "0042", "a string column keeps a number's literal"},
		{strKeyRules, map[string]any{"code": "a,b/c"}, "a%2Cb%2Fc", "separators escaped"},
		{strKeyRules, map[string]any{"code": ""}, "", "an empty string is a key"},
		{uuidKey, map[string]any{"id": id}, id, "UUID key, canonical"},
		{uuidKey, map[string]any{"id": strings.ToUpper(id)}, id, "UUID key in upper case: same key when typed uuid"},
		{uuidKey, map[string]any{"id": strings.ReplaceAll(id, "-", "")}, id, "UUID key without dashes"},
		{uuidKey, map[string]any{"id": []byte{0x3f, 0x25, 0x04, 0xe0, 0x4f, 0x89, 0x11, 0xd3, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01}}, id, "UUID key as 16 bytes"},
		{untypedUUID, map[string]any{"id": strings.ToUpper(id)}, strings.ToUpper(id), "untyped, case is kept: type the column uuid"},
		{composite, map[string]any{"id": json.Number("42"), "TenantId": json.Number("7")}, "7,42", "composite key in configured order, after rename"},
		{composite, map[string]any{"TenantId": "7", "id": "42"}, "7,42", "composite key from text"},
		{composite, map[string]any{"TenantId": int64(-1), "id": int64(0)}, "-1,0", "negative and zero parts"},
		{composite, map[string]any{"TenantId": "0", "id": "-0"}, "0,0", "zero parts from text"},
		{mixed, map[string]any{"tenant": "acme", "id": strings.ToUpper(id)}, "acme," + id, "string and UUID parts"},
		{mixed, map[string]any{"tenant": "a,b", "id": id}, "a%2Cb," + id, "a separator inside the string part cannot shift the split"},
	}
	for _, c := range cases {
		k, err := c.r.Key(c.raw)
		if err != nil || k.String() != c.want {
			t.Errorf("%s: Key(%v) = %q, %v; want %q", c.why, c.raw, k.String(), err, c.want)
			continue
		}
		// The key a row yields is the key its record key yields.
		row, _, err := c.r.Normalize(c.raw)
		if err != nil {
			t.Errorf("%s: Normalize: %v", c.why, err)
			continue
		}
		if fromRow, err := c.r.KeyFromRow(row); err != nil || fromRow.String() != c.want {
			t.Errorf("%s: KeyFromRow = %q, %v; want %q", c.why, fromRow.String(), err, c.want)
		}
		if p, err := ParseKey(k.Fields, k.String()); err != nil || p.String() != c.want {
			t.Errorf("%s: ParseKey(%q) = %v, %v", c.why, c.want, p, err)
		}
		if p, err := c.r.KeyFromText(k.String()); err != nil || p.String() != c.want {
			t.Errorf("%s: KeyFromText(%q) = %v, %v", c.why, c.want, p, err)
		}
	}
	// Keys that must stay apart.
	distinct := []struct {
		r    *Rules
		a, b map[string]any
		why  string
	}{
		{intKey, map[string]any{"id": "-7"}, map[string]any{"id": "7"}, "the sign"},
		{intKey, map[string]any{"id": "0"}, map[string]any{"id": "10"}, "zero is not ten"},
		{composite, map[string]any{"TenantId": 7, "id": 42}, map[string]any{"TenantId": 42, "id": 7}, "the order of the parts"},
		{mixed, map[string]any{"tenant": "a,b", "id": id}, map[string]any{"tenant": "a", "id": id}, "escaping keeps parts apart"},
		{uuidKey, map[string]any{"id": id}, map[string]any{"id": strings.Replace(id, "1", "2", 1)}, "another UUID"},
	}
	for _, c := range distinct {
		a, errA := c.r.Key(c.a)
		b, errB := c.r.Key(c.b)
		if errA != nil || errB != nil || a.String() == b.String() {
			t.Errorf("%s: %q and %q (%v, %v) must differ", c.why, a.String(), b.String(), errA, errB)
		}
	}
	// A bad value in a typed key column is a decode error, not another key.
	for _, raw := range []map[string]any{{"id": "42.5"}, {"id": "x"}} {
		if _, err := intKey.Key(raw); err == nil {
			t.Errorf("Key(%v): want an error", raw)
		}
	}
	if _, err := uuidKey.Key(map[string]any{"id": "not-a-uuid"}); err == nil {
		t.Error("a malformed UUID key must be an error")
	}
}

// TestKeyFromText: a key typed by a person finds the key its rows normalize
// to, whatever spelling the column's type accepts.
func TestKeyFromText(t *testing.T) {
	const id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	typed := mustRules(t, []string{"tenant_id", "ref"}, nil, nil, map[string]string{"tenant_id": "int", "ref": "uuid"}, 0)
	folded, err := NewRules([]string{"Tenant_ID", "REF"}, nil, nil, map[string]string{"TENANT_ID": "int", "Ref": "uuid"}, 0, CaseInsensitive(true))
	if err != nil {
		t.Fatal(err)
	}
	untyped := mustRules(t, []string{"code"}, nil, nil, nil, 0)
	row, err := typed.Key(map[string]any{"tenant_id": json.Number("7"), "ref": id})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		r       *Rules
		text    string
		want    string
		wantErr string
		why     string
	}{
		{typed, "7," + strings.ToUpper(id), row.String(), "", "an upper-case UUID is the row's lower-case one"},
		{typed, "7,{" + id + "}", row.String(), "", "braces, as .NET writes a UUID"},
		{typed, "7," + strings.ReplaceAll(strings.ToUpper(id), "-", ""), row.String(), "", "no dashes"},
		{typed, "007,urn:uuid:" + id, row.String(), "", "leading zeros of an int column, a urn prefix"},
		{folded, "7," + strings.ToUpper(id), row.String(), "", "the same under case_insensitive, whose types are spelled in any case"},
		{untyped, "ABC-1", "ABC-1", "", "an untyped column keeps the case: another key than abc-1"},
		{untyped, "a%2Cb", "a%2Cb", "", "escapes are read back"},
		{typed, "7,not-a-uuid", "", `key field "ref"`, "a part the type rejects names its field"},
		{typed, "x," + id, "", `key field "tenant_id"`, "an int column rejects a word"},
		{typed, id, "", "1 values for 2 key fields", "a composite key needs every part"},
	}
	for _, c := range cases {
		k, err := c.r.KeyFromText(c.text)
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: KeyFromText(%q) = %q, %v; want an error with %q", c.why, c.text, k.String(), err, c.wantErr)
			}
		case err != nil || k.String() != c.want:
			t.Errorf("%s: KeyFromText(%q) = %q, %v; want %q", c.why, c.text, k.String(), err, c.want)
		}
	}
}
