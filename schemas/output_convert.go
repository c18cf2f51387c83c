package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/linkedin/goavro/v2"
)

// jsonValueName is the record that carries, as JSON text, a value of a key or
// row that no Avro scalar holds exactly. A union that has it as a member takes
// any JSON value that its other members don't.
const jsonValueName = "dev.recon.JsonValue"

// avroType is the part of a parsed Avro schema that the JSON conversion needs.
// goavro keeps its own parse private, hence this small one.
type avroType struct {
	typ     string // record, enum, map, union, or a primitive type name
	name    string // the name goavro gives it as a union member: the full name, "map", "long.timestamp-millis"
	logical string
	fields  []avroField // record
	symbols []string    // enum
	values  *avroType   // map
	members []*avroType // union
}

type avroField struct {
	name string
	typ  *avroType
}

// parseAvroType parses the subset of Avro that recon's output schemas use:
// records, enums, maps, unions, primitives and long timestamp-millis.
func parseAvroType(schema string) (*avroType, error) {
	var v any
	if err := json.Unmarshal([]byte(schema), &v); err != nil {
		return nil, err
	}
	p := schemaParser{named: make(map[string]*avroType)}
	return p.parse(v, "")
}

type schemaParser struct{ named map[string]*avroType }

func (p *schemaParser) parse(v any, ns string) (*avroType, error) {
	switch s := v.(type) {
	case string:
		switch s {
		case "null", "boolean", "long", "double", "string":
			return &avroType{typ: s, name: s}, nil
		}
		if t, ok := p.named[fullName(s, ns)]; ok {
			return t, nil
		}
		return nil, fmt.Errorf("type %q is unknown or not supported by recon's output conversion", s)
	case []any:
		u := &avroType{typ: "union", name: "union"}
		for _, m := range s {
			t, err := p.parse(m, ns)
			if err != nil {
				return nil, err
			}
			u.members = append(u.members, t)
		}
		return u, nil
	case map[string]any:
		return p.parseComplex(s, ns)
	}
	return nil, fmt.Errorf("unexpected schema element %v", v)
}

func (p *schemaParser) parseComplex(s map[string]any, ns string) (*avroType, error) {
	typ, _ := s["type"].(string)
	switch typ {
	case "record", "enum":
		name, _ := s["name"].(string)
		if space, ok := s["namespace"].(string); ok && !strings.Contains(name, ".") {
			ns = space
		}
		full := fullName(name, ns)
		if i := strings.LastIndexByte(full, '.'); i >= 0 {
			ns = full[:i] // names inside resolve against the record's own namespace
		}
		t := &avroType{typ: typ, name: full}
		p.named[full] = t
		if typ == "enum" {
			syms, _ := s["symbols"].([]any)
			for _, sym := range syms {
				name, _ := sym.(string)
				t.symbols = append(t.symbols, name)
			}
			return t, nil
		}
		fields, _ := s["fields"].([]any)
		for _, f := range fields {
			fm, _ := f.(map[string]any)
			fname, _ := fm["name"].(string)
			ft, err := p.parse(fm["type"], ns)
			if err != nil {
				return nil, fmt.Errorf("field %s.%s: %w", full, fname, err)
			}
			t.fields = append(t.fields, avroField{name: fname, typ: ft})
		}
		return t, nil
	case "map":
		values, err := p.parse(s["values"], ns)
		if err != nil {
			return nil, err
		}
		return &avroType{typ: "map", name: "map", values: values}, nil
	case "long":
		if lt, _ := s["logicalType"].(string); lt == "timestamp-millis" {
			return &avroType{typ: "long", name: "long.timestamp-millis", logical: lt}, nil
		}
	}
	if _, ok := s["logicalType"]; !ok && typ != "" {
		return p.parse(typ, ns)
	}
	return nil, fmt.Errorf("type %v is not supported by recon's output conversion", s)
}

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

// toNative converts a JSON value (decoded with UseNumber) to goavro's native
// form of t. path names the field in errors.
func toNative(t *avroType, v any, path string) (any, error) {
	switch t.typ {
	case "union":
		if v == nil {
			if !slices.ContainsFunc(t.members, func(m *avroType) bool { return m.typ == "null" }) {
				return nil, fmt.Errorf("%s: null where the schema wants a value", orTop(path))
			}
			return nil, nil
		}
		for _, m := range t.members {
			if fits(m, v) {
				n, err := toNative(m, v, path)
				if err != nil {
					return nil, err
				}
				return goavro.Union(m.name, n), nil
			}
		}
		return nil, fmt.Errorf("%s: %s fits no member of its union", orTop(path), describe(v))
	case "record":
		if t.name == jsonValueName {
			text, err := jsonText(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", orTop(path), err)
			}
			return map[string]any{"json": text}, nil
		}
		return recordNative(t, v, path)
	case "map":
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: %s, want an object", orTop(path), describe(v))
		}
		out := make(map[string]any, len(obj))
		for k, fv := range obj {
			n, err := toNative(t.values, fv, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	}
	if !fits(t, v) {
		return nil, fmt.Errorf("%s: %s does not fit %s", orTop(path), describe(v), t.name)
	}
	switch t.typ {
	case "long":
		if t.logical != "" {
			// goavro truncates to milliseconds; recon writes millisecond
			// times when its outputs are Avro.
			ts, _ := time.Parse(time.RFC3339Nano, v.(string))
			return ts, nil
		}
		n, _ := strconv.ParseInt(string(v.(json.Number)), 10, 64)
		return n, nil
	case "double":
		f, _ := strconv.ParseFloat(string(v.(json.Number)), 64)
		return f, nil
	}
	return v, nil // null, boolean, string, enum
}

func recordNative(t *avroType, v any, path string) (any, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: %s, want an object", orTop(path), describe(v))
	}
	out := make(map[string]any, len(t.fields))
	matched := 0
	for _, f := range t.fields {
		fv, present := obj[f.name]
		if present {
			matched++
		} else if f.typ.typ != "union" {
			return nil, fmt.Errorf("%s: missing", join(path, f.name))
		}
		n, err := toNative(f.typ, fv, join(path, f.name))
		if err != nil {
			return nil, err
		}
		out[f.name] = n
	}
	if matched < len(obj) {
		for k := range obj {
			if !slices.ContainsFunc(t.fields, func(f avroField) bool { return f.name == k }) {
				return nil, fmt.Errorf("%s: no field in %s: update the schema with the event", join(path, k), t.name)
			}
		}
	}
	return out, nil
}

// fits reports whether a JSON value is one of t's values, exactly: a number
// is a long only if it is an integer that fits, and a double only if it is
// the shortest text of a float64, so that the JSON form comes back unchanged.
func fits(t *avroType, v any) bool {
	switch t.typ {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "string", "enum":
		s, ok := v.(string)
		return ok && (t.typ == "string" || slices.Contains(t.symbols, s))
	case "long":
		if t.logical != "" {
			s, ok := v.(string)
			if !ok {
				return false
			}
			_, err := time.Parse(time.RFC3339Nano, s)
			return err == nil
		}
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		return err == nil && strconv.FormatInt(i, 10) == string(n)
	case "double":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		f, err := strconv.ParseFloat(string(n), 64)
		return err == nil && strconv.FormatFloat(f, 'g', -1, 64) == string(n)
	case "record":
		if t.name == jsonValueName {
			return v != nil
		}
		_, ok := v.(map[string]any)
		return ok
	case "map":
		_, ok := v.(map[string]any)
		return ok
	}
	return false
}

// appendJSON renders goavro's native form of t as JSON: records' fields in
// schema order, maps' keys sorted, times as RFC 3339 in UTC.
func appendJSON(b []byte, t *avroType, n any, path string) ([]byte, error) {
	switch t.typ {
	case "union":
		if n == nil {
			return append(b, "null"...), nil
		}
		m, ok := n.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, fmt.Errorf("%s: union value %T, want a one-entry map", orTop(path), n)
		}
		for name, v := range m {
			i := slices.IndexFunc(t.members, func(m *avroType) bool { return m.name == name })
			if i < 0 {
				return nil, fmt.Errorf("%s: union member %s is not in the schema", orTop(path), name)
			}
			return appendJSON(b, t.members[i], v, path)
		}
	case "record":
		m, ok := n.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: record value %T", orTop(path), n)
		}
		if t.name == jsonValueName {
			s, _ := m["json"].(string)
			if !json.Valid([]byte(s)) {
				return nil, fmt.Errorf("%s: %s is not JSON", orTop(path), jsonValueName)
			}
			return append(b, s...), nil
		}
		b = append(b, '{')
		for i, f := range t.fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f.name)
			b = append(b, ':')
			var err error
			if b, err = appendJSON(b, f.typ, m[f.name], join(path, f.name)); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case "map":
		m, ok := n.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: map value %T", orTop(path), n)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendJSON(b, t.values, m[k], path+"."+k); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	return appendScalar(b, t, n, path)
}

func appendScalar(b []byte, t *avroType, n any, path string) ([]byte, error) {
	switch v := n.(type) {
	case nil:
		if t.typ == "null" {
			return append(b, "null"...), nil
		}
	case bool:
		if t.typ == "boolean" {
			return strconv.AppendBool(b, v), nil
		}
	case string:
		if t.typ == "string" || t.typ == "enum" {
			return appendString(b, v), nil
		}
	case int64:
		if t.typ == "long" && t.logical == "" {
			return strconv.AppendInt(b, v, 10), nil
		}
	case float64:
		if t.typ == "double" {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%s: %v has no JSON form", orTop(path), v)
			}
			return strconv.AppendFloat(b, v, 'g', -1, 64), nil
		}
	case time.Time:
		if t.logical != "" {
			return appendString(b, v.UTC().Format(time.RFC3339Nano)), nil
		}
	}
	return nil, fmt.Errorf("%s: native %T does not fit %s", orTop(path), n, t.name)
}

// jsonText is the JSON text of a value decoded with UseNumber: numbers keep
// their literal, object keys come sorted, and <, > and & stay as they are.
func jsonText(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case json.Number:
		return "number " + string(v)
	case string:
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return strconv.Quote(v)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%v", v)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func orTop(path string) string {
	if path == "" {
		return "event"
	}
	return path
}
