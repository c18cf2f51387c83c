package consumer

import (
	"reflect"
	"testing"
)

func TestFlatKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]any
		ok   bool
	}{
		{`{"id":42}`, map[string]any{"id": num("42")}, true},
		{` { "tenant" : "acme" , "id" : -7 } `, map[string]any{"tenant": "acme", "id": num("-7")}, true},
		{`{"id":9223372036854775807,"f":1.5e3,"b":true,"n":null,"x":false}`, map[string]any{"id": num("9223372036854775807"), "f": num("1.5e3"), "b": true, "n": nil, "x": false}, true},
		{`{}`, map[string]any{}, true},
		{`{"id":01}`, nil, false},
		{`{"id":1,"id":2}`, nil, false},
		{`{"id":"a\"b"}`, nil, false},
		{`{"id":"é"}`, nil, false},
		{`{"id":{"nested":1}}`, nil, false},
		{`{"id":1} x`, nil, false},
		{`{"id":1,}`, nil, false},
		{`{"id":NaN}`, nil, false},
		{`{"id":tru}`, nil, false},
		{`{"id"}`, nil, false},
	} {
		got, ok := flatKey([]byte(tc.in))
		if ok != tc.ok || (ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("flatKey(%s) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzFlatKey checks the key fast path against the general decoder: what it
// takes, the general decoder reads the same way.
func FuzzFlatKey(f *testing.F) {
	for _, s := range []string{`{"id":42}`, `{"a":"b","c":-1.5E+3,"d":null}`, `{"id":1,"id":2}`, `{ }`, `{"x":0.0e0}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := flatKey(b)
		if !ok {
			return
		}
		var want map[string]any
		if err := unmarshalNumbers(b, &want); err != nil {
			t.Fatalf("fast path took %q, the general decoder says %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast %#v, general %#v", b, got, want)
		}
	})
}
