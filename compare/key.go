package compare

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// String is the deterministic text of k: the texts of its values, joined by
// "," when there are several. Inside each text '%', ',', '/', control bytes
// and bytes of invalid UTF-8 are percent-encoded (%XX, upper-case hex), so the
// encoding is unambiguous, valid UTF-8, and fits in a Kafka record key
// "<dataset>/<target>/<key>" and in a URL path segment. Keys are equal
// exactly when their Strings are: the kinds are left out on purpose, so "42"
// and 42 name the same key whatever the column's type.
func (k Key) String() string {
	if len(k.Values) == 1 && !needsEscape(k.Values[0].Text) {
		return k.Values[0].Text
	}
	n := len(k.Values)
	for _, v := range k.Values {
		n += len(v.Text)
	}
	b := make([]byte, 0, n)
	for i, v := range k.Values {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEscaped(b, v.Text)
	}
	return string(b)
}

func escapeByte(c byte) bool { return c == '%' || c == ',' || c == '/' || c < 0x20 || c == 0x7f }

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; escapeByte(c) || c >= utf8.RuneSelf {
			// Non-ASCII may well be valid; appendEscaped tells.
			return true
		}
	}
	return false
}

func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			if r, size := utf8.DecodeRuneInString(s[i:]); r != utf8.RuneError || size > 1 {
				b = append(b, s[i:i+size]...)
				i += size
				continue
			}
		} else if !escapeByte(c) {
			b = append(b, c)
			i++
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&0xf])
		i++
	}
	return b
}

// ParseKey reverses Key.String for the given key fields. The values come back
// as KindString: a parsed key serves lookups by its String, which is the same
// as the String of the key it was made from.
func ParseKey(fields []string, s string) (Key, error) {
	if len(fields) == 0 {
		return Key{}, errors.New("parse key: no key fields")
	}
	parts := strings.Split(s, ",")
	if len(parts) != len(fields) {
		return Key{}, fmt.Errorf("parse key %s: %d values for %d key fields", quoteShort(s), len(parts), len(fields))
	}
	k := Key{Fields: fields, Values: make([]Value, len(parts))}
	for i, p := range parts {
		t, err := unescape(p)
		if err != nil {
			return Key{}, fmt.Errorf("parse key %s: field %q: %w", quoteShort(s), fields[i], err)
		}
		k.Values[i] = Value{Kind: KindString, Text: t}
	}
	return k, nil
}

// KeyFromText reads a key a person typed (a command-line argument, an API
// path) in the text form of Key.String, and normalizes each part the way a
// row's key field is normalized, so that any spelling the rules accept for a
// column finds the key: with id typed uuid, "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
// and "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}" both find the key
// "3f2504e0-4f89-11d3-9a0c-0305e82c3301"; with id typed int, "007" finds "7".
// A part of a column without a type in compare.types is taken as it is, as
// ParseKey takes it (its case is part of the key). A part the column's type
// rejects is an error naming the field.
func (r *Rules) KeyFromText(s string) (Key, error) {
	k, err := ParseKey(r.key, s)
	if err != nil {
		return Key{}, err
	}
	for i, f := range r.key {
		v, err := r.NormalizeValue(f, k.Values[i].Text)
		if err != nil {
			return Key{}, fmt.Errorf("parse key %s: key field %q: %w", quoteShort(s), f, err)
		}
		k.Values[i] = v
	}
	return k, nil
}

func unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape at byte %d", i)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad escape %q at byte %d", s[i:i+3], i)
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return string(b), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// MarshalJSON renders k as an object of its fields in key order, each value
// in its JSON form (see Value.MarshalJSON).
func (k Key) MarshalJSON() ([]byte, error) {
	if len(k.Fields) != len(k.Values) {
		return nil, fmt.Errorf("key has %d fields and %d values", len(k.Fields), len(k.Values))
	}
	b := []byte{'{'}
	for i, f := range k.Fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, f)
		b = append(b, ':')
		b = appendValueJSON(b, k.Values[i])
	}
	return append(b, '}'), nil
}

var _ json.Marshaler = Key{}
