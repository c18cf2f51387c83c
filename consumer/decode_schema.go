package consumer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Kafka Connect and Debezium logical type names (schema "name").
const (
	nameDecimal         = "org.apache.kafka.connect.data.Decimal"
	nameConnectDate     = "org.apache.kafka.connect.data.Date"
	nameConnectTime     = "org.apache.kafka.connect.data.Time"
	nameConnectTS       = "org.apache.kafka.connect.data.Timestamp"
	nameVarScaleDecimal = "io.debezium.data.VariableScaleDecimal"
	nameDate            = "io.debezium.time.Date"
	nameTime            = "io.debezium.time.Time"
	nameMicroTime       = "io.debezium.time.MicroTime"
	nameNanoTime        = "io.debezium.time.NanoTime"
	nameTimestamp       = "io.debezium.time.Timestamp"
	nameMicroTimestamp  = "io.debezium.time.MicroTimestamp"
	nameNanoTimestamp   = "io.debezium.time.NanoTimestamp"
	nameZonedTimestamp  = "io.debezium.time.ZonedTimestamp"
)

// connectSchema is JsonConverter's rendering of a Connect schema.
type connectSchema struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Field      string          `json:"field"`
	Parameters map[string]any  `json:"parameters"`
	Fields     []connectSchema `json:"fields"`
	Items      *connectSchema  `json:"items"`
	Keys       *connectSchema  `json:"keys"`
	Values     *connectSchema  `json:"values"`
}

type convKind uint8

const (
	convStruct convKind = iota + 1
	convArray
	convMap
	convBytes
	convDecimal
	convVarDecimal
	convDate
	convTime      // unit: ms, µs or ns past midnight
	convTimestamp // unit: ms, µs or ns since the epoch
	convZoned
)

// conv says how to turn a JSON value into its logical Go value. A nil *conv
// means the value stays as JSON decoded it; compiled trees keep only the
// branches that lead to a conversion, so plain columns cost nothing per record.
type conv struct {
	kind   convKind
	unit   time.Duration // convTime, convTimestamp
	scale  int32         // convDecimal
	fields []fieldConv   // convStruct
	elem   *conv         // convArray items, convMap values
	key    *conv         // convMap keys
}

type fieldConv struct {
	name string
	conv *conv
}

func compileSchema(s *connectSchema) (*conv, error) {
	switch s.Name {
	case nameDecimal:
		scale, err := decimalScale(s.Parameters)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", s.Field, err)
		}
		return &conv{kind: convDecimal, scale: scale}, nil
	case nameVarScaleDecimal:
		return &conv{kind: convVarDecimal}, nil
	case nameDate, nameConnectDate:
		return &conv{kind: convDate}, nil
	case nameTime, nameConnectTime:
		return &conv{kind: convTime, unit: time.Millisecond}, nil
	case nameMicroTime:
		return &conv{kind: convTime, unit: time.Microsecond}, nil
	case nameNanoTime:
		return &conv{kind: convTime, unit: time.Nanosecond}, nil
	case nameTimestamp, nameConnectTS:
		return &conv{kind: convTimestamp, unit: time.Millisecond}, nil
	case nameMicroTimestamp:
		return &conv{kind: convTimestamp, unit: time.Microsecond}, nil
	case nameNanoTimestamp:
		return &conv{kind: convTimestamp, unit: time.Nanosecond}, nil
	case nameZonedTimestamp:
		return &conv{kind: convZoned}, nil
	}
	switch s.Type {
	case "bytes":
		// Named bytes types recon does not interpret (Bits, WKB) are bytes too.
		return &conv{kind: convBytes}, nil
	case "struct":
		var fields []fieldConv
		for i := range s.Fields {
			c, err := compileSchema(&s.Fields[i])
			if err != nil {
				return nil, err
			}
			if c != nil {
				fields = append(fields, fieldConv{name: s.Fields[i].Field, conv: c})
			}
		}
		if fields == nil {
			return nil, nil
		}
		return &conv{kind: convStruct, fields: fields}, nil
	case "array":
		if s.Items == nil {
			return nil, nil
		}
		elem, err := compileSchema(s.Items)
		if err != nil || elem == nil {
			return nil, err
		}
		return &conv{kind: convArray, elem: elem}, nil
	case "map":
		var key, elem *conv
		var err error
		if s.Keys != nil {
			if key, err = compileSchema(s.Keys); err != nil {
				return nil, err
			}
		}
		if s.Values != nil {
			if elem, err = compileSchema(s.Values); err != nil {
				return nil, err
			}
		}
		if key == nil && elem == nil {
			return nil, nil
		}
		return &conv{kind: convMap, key: key, elem: elem}, nil
	}
	return nil, nil
}

// decimalScale reads Decimal's "scale" parameter. JsonConverter writes
// parameters as strings; a number is accepted too.
func decimalScale(params map[string]any) (int32, error) {
	var text string
	switch v := params["scale"].(type) {
	case string:
		text = v
	case json.Number:
		text = v.String()
	default:
		return 0, fmt.Errorf("%s without an integer parameter \"scale\"", nameDecimal)
	}
	n, err := strconv.ParseInt(text, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s parameter scale %.20q: want an int32", nameDecimal, text)
	}
	return int32(n), nil
}

// schemaEntry is one compiled schema text.
type schemaEntry struct {
	raw      string
	root     *conv
	isStruct bool
	err      error
}

func compileEntry(raw []byte) *schemaEntry {
	e := &schemaEntry{raw: string(raw)}
	var s connectSchema
	if err := unmarshalNumbers(raw, &s); err != nil {
		e.err = err
		return e
	}
	e.isStruct = s.Type == "struct"
	e.root, e.err = compileSchema(&s)
	return e
}

// field is the conversion of the root struct's field name: "after" or
// "before" of an envelope. nil when there is nothing to convert.
func (e *schemaEntry) field(name string) *conv {
	if e == nil || e.root == nil {
		return nil
	}
	for _, f := range e.root.fields {
		if f.name == name {
			return f.conv
		}
	}
	return nil
}

// valueErr says why a value schema cannot be used; want names the struct the
// format expects ("an envelope", "a row").
func (e *schemaEntry) valueErr(want string) *DecodeError {
	switch {
	case e == nil:
		return nil
	case e.err != nil:
		return decodeErr(ReasonUnknownSchema, "value schema: %w", e.err)
	case !e.isStruct:
		return decodeErr(ReasonUnknownSchema, "value schema: want %s struct", want)
	}
	return nil
}

func (e *schemaEntry) keyErr() *DecodeError {
	if e != nil && e.err != nil {
		return decodeErr(ReasonUnknownSchema, "key schema: %w", e.err)
	}
	return nil
}

// schemaCacheSize bounds the schemas kept per decoder: a topic's key and value
// schemas, and a few versions of them across schema changes.
const schemaCacheSize = 16

// schemaCache maps schema text to its compiled form. Reads are lock-free on
// an immutable slice; writers copy it under mu. A linear scan beats hashing
// here: the slice is tiny and a mismatch fails on length or first bytes.
type schemaCache struct {
	mu      sync.Mutex
	entries atomic.Pointer[[]*schemaEntry]
}

func (c *schemaCache) find(raw []byte) *schemaEntry {
	if p := c.entries.Load(); p != nil {
		for _, e := range *p {
			if e.raw == string(raw) {
				return e
			}
		}
	}
	return nil
}

// lookup returns raw's compiled schema, compiling and caching it on a miss.
// Errors are cached too, so a bad schema repeated in every record is parsed once.
func (c *schemaCache) lookup(raw []byte) *schemaEntry {
	if e := c.find(raw); e != nil {
		return e
	}
	e := compileEntry(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if found := c.find(raw); found != nil {
		return found
	}
	var old []*schemaEntry
	if p := c.entries.Load(); p != nil {
		old = *p
	}
	next := make([]*schemaEntry, 0, min(len(old)+1, schemaCacheSize))
	next = append(next, e)
	next = append(next, old[:min(len(old), schemaCacheSize-1)]...)
	c.entries.Store(&next)
	return e
}

const (
	wrapHead = `{"schema":`
	wrapMid  = `,"payload":`
)

// splitWrapped recognizes JsonConverter's compact `{"schema":S,"payload":P}`
// with a cached S and returns P without parsing S again. S is a complete JSON
// value and is followed by a comma, so a byte match is an exact match. Any
// other layout returns ok=false and takes the general path.
func (c *schemaCache) splitWrapped(data []byte) (e *schemaEntry, payload []byte, ok bool) {
	if !bytes.HasPrefix(data, []byte(wrapHead)) {
		return nil, nil, false
	}
	p := c.entries.Load()
	if p == nil {
		return nil, nil, false
	}
	rest := data[len(wrapHead):]
	for _, e := range *p {
		n := len(e.raw)
		if len(rest) < n+len(wrapMid) || string(rest[:n]) != e.raw || string(rest[n:n+len(wrapMid)]) != wrapMid {
			continue
		}
		payload = bytes.TrimRight(rest[n+len(wrapMid):], jsonSpace)
		if len(payload) == 0 || payload[len(payload)-1] != '}' {
			return nil, nil, false
		}
		return e, payload[:len(payload)-1], true
	}
	return nil, nil, false
}
