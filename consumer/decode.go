package consumer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/recon-dev/recon/compare"
)

// Reasons a record cannot be decoded. They label the decode-error metric, so
// the set is small and fixed.
const (
	ReasonMalformed      = "malformed"       // not JSON, or not a Debezium envelope
	ReasonUnknownOp      = "unknown_op"      // op outside c, u, d, r, t, m
	ReasonMissingVersion = "missing_version" // the configured version is absent or null
	ReasonBadValue       = "bad_value"       // a value does not fit its declared type
	ReasonOversized      = "oversized"       // a value too large to represent or decode safely
	ReasonMissingKey     = "missing_key"     // reported by callers: no key fields in key or row
	ReasonUnknownSchema  = "unknown_schema"  // a schema wrapper or registry schema recon cannot interpret
	// Avro in the Confluent wire format (debezium-avro, flat-avro).
	ReasonBadMagic        = "bad_magic"         // no 5-byte header with magic byte 0
	ReasonUnknownSchemaID = "unknown_schema_id" // the schema registry has no schema with the record's id
	ReasonTruncated       = "truncated"         // Avro data that ends before its writer schema does
	// Hostile JSON, refused before parsing (checkJSON).
	ReasonTooDeep     = "too_deeply_nested" // objects and arrays nested deeper than maxJSONDepth
	ReasonInvalidUTF8 = "invalid_utf8"      // bytes that are not UTF-8
)

// Reasons lists every Reason constant, for zero-valued metric series.
func Reasons() []string {
	return []string{ReasonMalformed, ReasonUnknownOp, ReasonMissingVersion, ReasonBadValue, ReasonOversized,
		ReasonMissingKey, ReasonUnknownSchema, ReasonBadMagic, ReasonUnknownSchemaID, ReasonTruncated,
		ReasonTooDeep, ReasonInvalidUTF8}
}

// Values of Decoded.Skip: records that are valid but are not row changes.
const (
	SkipTruncate = "truncate" // op "t"
	SkipMessage  = "message"  // op "m", a logical-decoding message
)

// Decoded is one Kafka record decoded, before normalization.
type Decoded struct {
	Tombstone bool // null/empty value: not a change (compaction marker after a delete); other fields zero
	// Skip is SkipTruncate or SkipMessage for valid records that change no row;
	// only EventTime is set with it. Callers count and drop them.
	Skip      string
	Op        compare.Op      // c,u,r -> OpUpsert; d -> OpDelete
	Key       map[string]any  // raw key struct from the record key (wrapper or not); nil when the record key is null/empty
	Row       map[string]any  // raw row: `after` for upserts, `before` for deletes (may be nil for a delete without before image)
	Version   compare.Version // by the decoder's version spec
	Lineage   compare.Version // zero when no lineage spec or the field is null/absent
	EventTime time.Time       // source.ts_ms (UTC); if absent, the record timestamp passed in
}

// DecodeError is a record that cannot be decoded; it goes to the DLQ.
type DecodeError struct {
	Reason string // one of the Reason constants
	Err    error
}

func (e *DecodeError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(reason, format string, args ...any) *DecodeError {
	return &DecodeError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Meta is what a decoder knows of the record besides its bytes.
type Meta struct {
	Offset    int64
	Timestamp time.Time
}

// DebeziumJSON decodes Debezium change events written by Kafka Connect's
// JsonConverter, with or without the schema wrapper, for one system. Safe for
// concurrent use: its only mutable part is the schema cache.
type DebeziumJSON struct {
	version, lineage compare.VersionSpec
	unmarshal        func(data []byte, v any) error
	schemas          schemaCache
}

// NewDebeziumJSON returns a decoder that takes each record's version from
// version and, if lineage is set, its lineage from lineage. A zero version
// spec yields zero versions.
func NewDebeziumJSON(version, lineage compare.VersionSpec) *DebeziumJSON {
	return &DebeziumJSON{version: version, lineage: lineage, unmarshal: unmarshalNumbers}
}

// envelopeWire is Debezium's envelope. Rows are generic maps because their
// columns are the table's; numbers in them stay json.Number. Before is kept
// raw and decoded only for deletes: updates under REPLICA IDENTITY FULL or
// MySQL's default full row image carry a before row nobody reads.
type envelopeWire struct {
	Before json.RawMessage `json:"before"`
	After  map[string]any  `json:"after"`
	Source sourceWire      `json:"source"`
	Op     string          `json:"op"`
}

// sourceWire holds the source fields recon reads. snapshot is left out on
// purpose: it is a string enum that nothing here depends on.
type sourceWire struct {
	TsMs json.Number `json:"ts_ms"`
	LSN  json.Number `json:"lsn"`
	File string      `json:"file"`
	Pos  json.Number `json:"pos"`
	Row  json.Number `json:"row"`
}

// valueWire reads both shapes in one pass: the embedded envelope catches an
// unwrapped event, Schema and Payload a wrapped one.
type valueWire struct {
	Schema  json.RawMessage `json:"schema"`
	Payload *envelopeWire   `json:"payload"`
	envelopeWire
}

// Decode decodes one record. Every error it returns is a *DecodeError.
func (d *DebeziumJSON) Decode(key, value []byte, m Meta) (Decoded, error) {
	env, sch, derr := d.readValue(value)
	if derr != nil {
		return Decoded{}, derr
	}
	if env == nil {
		return tombstone(d, key)
	}
	var out Decoded
	var rowConv *conv
	switch env.Op {
	case "c", "u", "r":
		if env.After == nil {
			return Decoded{}, decodeErr(ReasonMalformed, "op %q without \"after\"", env.Op)
		}
		out.Op, out.Row, rowConv = compare.OpUpsert, env.After, sch.field("after")
	case "d":
		out.Op, rowConv = compare.OpDelete, sch.field("before")
		if !isNull(env.Before) {
			if firstByte(env.Before) != '{' {
				return Decoded{}, decodeErr(ReasonMalformed, "op \"d\" with a \"before\" that is not an object")
			}
			if err := d.unmarshal(env.Before, &out.Row); err != nil {
				return Decoded{}, decodeErr(ReasonMalformed, "before: %w", err)
			}
		}
	case "t", "m":
		et, derr := eventTime(env, m)
		if derr != nil {
			return Decoded{}, derr
		}
		out.Skip, out.EventTime = SkipTruncate, et
		if env.Op == "m" {
			out.Skip = SkipMessage
		}
		return out, nil
	case "":
		return Decoded{}, decodeErr(ReasonMalformed, "missing \"op\"")
	default:
		return Decoded{}, decodeErr(ReasonUnknownOp, "op %.20q", env.Op)
	}
	if derr := convertRow(out.Row, rowConv, "row"); derr != nil {
		return Decoded{}, derr
	}
	if out.EventTime, derr = eventTime(env, m); derr != nil {
		return Decoded{}, derr
	}
	if out.Version, derr = versionOf(d.version, env, out.Row, m); derr != nil {
		return Decoded{}, derr
	}
	if out.Lineage, derr = versionOf(d.lineage, env, out.Row, m); derr != nil {
		// An absent lineage only means the row does not say where it came from.
		if derr.Reason != ReasonMissingVersion {
			return Decoded{}, derr
		}
		out.Lineage = compare.Version{}
	}
	if out.Key, derr = d.readKey(key); derr != nil {
		return Decoded{}, derr
	}
	return out, nil
}

// tombstone is the result of a null value: a tombstone, unless its key is
// not a key. Nothing reads a tombstone's key, but one that does not decode
// means a broken producer, which the DLQ makes visible rather than a skip
// hiding it; with flat-json the key is all a tombstone-delete says.
func tombstone(d *DebeziumJSON, key []byte) (Decoded, error) {
	if _, derr := d.readKey(key); derr != nil {
		return Decoded{}, derr
	}
	return Decoded{Tombstone: true}, nil
}

// readValue finds the envelope in either shape and the compiled schema of a
// wrapped one. A nil envelope is a tombstone.
func (d *DebeziumJSON) readValue(value []byte) (*envelopeWire, *schemaEntry, *DecodeError) {
	if isNull(value) {
		return nil, nil, nil
	}
	// Fast path: JsonConverter repeats the same schema text in every record;
	// once it is cached, only the payload needs parsing.
	if e, payload, ok := d.schemas.splitWrapped(value); ok {
		if derr := checkWrapped(e, payload); derr != nil {
			return nil, nil, derr
		}
		if isNull(payload) {
			return nil, nil, nil
		}
		env := new(envelopeWire)
		if d.unmarshal(payload, env) == nil {
			return env, e, e.valueErr("an envelope")
		}
		// Fall through so that the error names the whole record.
	}
	if derr := checkJSON("value", value); derr != nil {
		return nil, nil, derr
	}
	var w valueWire
	if err := d.unmarshal(value, &w); err != nil {
		return nil, nil, decodeErr(ReasonMalformed, "value: %w", err)
	}
	switch {
	case w.Schema == nil && w.Payload == nil:
		return &w.envelopeWire, nil, nil
	case w.Schema == nil:
		return nil, nil, decodeErr(ReasonMalformed, "value: \"payload\" without \"schema\"")
	case w.Payload == nil && w.Op == "":
		// {"schema":…,"payload":null}: a null value written with its schema.
		return nil, nil, nil
	case w.Payload == nil:
		return nil, nil, decodeErr(ReasonMalformed, "value: \"schema\" without \"payload\"")
	}
	if isNull(w.Schema) {
		return w.Payload, nil, nil
	}
	e := d.schemas.lookup(w.Schema)
	return w.Payload, e, e.valueErr("an envelope")
}

// readKey decodes the record key in either shape. Debezium keys are structs,
// so anything but an object (or null) is malformed.
func (d *DebeziumJSON) readKey(key []byte) (map[string]any, *DecodeError) {
	if isNull(key) {
		return nil, nil
	}
	if derr := checkJSON("key", key); derr != nil {
		return nil, derr
	}
	if e, payload, ok := d.schemas.splitWrapped(key); ok {
		if k, derr := d.keyPayload(payload, e); derr == nil {
			return k, nil
		}
	}
	if firstByte(key) != '{' {
		return nil, decodeErr(ReasonMalformed, "key: want a JSON object (a Debezium key struct), got %.40q", key)
	}
	// Most keys are unwrapped and small; look for the wrapper only when its
	// member names occur at all.
	if bytes.Contains(key, []byte(`"payload"`)) {
		var parts map[string]json.RawMessage
		if err := d.unmarshal(key, &parts); err != nil {
			return nil, decodeErr(ReasonMalformed, "key: %w", err)
		}
		sch, hasSchema := parts["schema"]
		payload, hasPayload := parts["payload"]
		if len(parts) == 2 && hasSchema && hasPayload && (isNull(sch) || firstByte(sch) == '{') {
			var e *schemaEntry
			if !isNull(sch) {
				e = d.schemas.lookup(sch)
			}
			return d.keyPayload(payload, e)
		}
	}
	if k, ok := flatKey(key); ok {
		return k, nil
	}
	var k map[string]any
	if err := d.unmarshal(key, &k); err != nil {
		return nil, decodeErr(ReasonMalformed, "key: %w", err)
	}
	return k, nil
}

func (d *DebeziumJSON) keyPayload(payload []byte, e *schemaEntry) (map[string]any, *DecodeError) {
	if derr := e.keyErr(); derr != nil {
		return nil, derr
	}
	if isNull(payload) {
		return nil, nil
	}
	if firstByte(payload) != '{' {
		return nil, decodeErr(ReasonMalformed, "key: payload: want a JSON object (a Debezium key struct), got %.40q", payload)
	}
	var k map[string]any
	if err := d.unmarshal(payload, &k); err != nil {
		return nil, decodeErr(ReasonMalformed, "key: payload: %w", err)
	}
	var root *conv
	if e != nil {
		root = e.root
	}
	if derr := convertRow(k, root, "key"); derr != nil {
		return nil, derr
	}
	return k, nil
}

// eventTime is when the change happened in its database; records that do not
// say fall back to the Kafka record timestamp.
func eventTime(env *envelopeWire, m Meta) (time.Time, *DecodeError) {
	if env.Source.TsMs == "" {
		return m.Timestamp, nil
	}
	ms, err := strconv.ParseInt(string(env.Source.TsMs), 10, 64)
	if err != nil {
		return time.Time{}, decodeErr(ReasonBadValue, "source.ts_ms %.40q: want an integer", env.Source.TsMs)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// convertRow applies a wrapper schema's logical types to row in place and,
// for rows (keys are never TOASTed), turns TOAST placeholders into
// compare.Unavailable. what names the row in errors.
func convertRow(row map[string]any, c *conv, what string) *DecodeError {
	if what == "row" {
		for name, v := range row {
			if isPlaceholder(v) {
				row[name] = compare.Unavailable{}
			}
		}
	}
	if c == nil || row == nil {
		return nil
	}
	for _, f := range c.fields {
		v, ok := row[f.name]
		if !ok {
			continue
		}
		nv, err := convert(v, f.conv)
		if err != nil {
			reason := ReasonBadValue
			if errors.Is(err, errOversized) {
				reason = ReasonOversized
			}
			return &DecodeError{Reason: reason, Err: fmt.Errorf("%s column %q: %w", what, f.name, err)}
		}
		row[f.name] = nv
	}
	return nil
}

// jsonSpace is JSON's whitespace; bytes.TrimSpace would also strip Unicode
// spaces and so accept values a JSON parser rejects.
const jsonSpace = " \t\r\n"

func isNull(b []byte) bool {
	b = bytes.Trim(b, jsonSpace)
	return len(b) == 0 || string(b) == "null"
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, jsonSpace)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
