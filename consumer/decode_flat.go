package consumer

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/recon-dev/recon/compare"
)

// flatMetaPrefix marks the metadata that ExtractNewRecordState's add.fields
// copies into the row (add.fields.prefix, "__" by default).
const flatMetaPrefix = "__"

// FlatJSON decodes records written by Debezium's ExtractNewRecordState SMT
// ("unwrap"): the value is the row itself, with optional metadata columns
// prefixed "__" (add.fields=op,lsn,source.ts_ms → __op, __lsn,
// __source_ts_ms) and, in the rewrite delete modes, __deleted. Values may be
// plain or wrapped by JsonConverter as {"schema":…,"payload":{row}}; keys are
// the Debezium key struct in either shape. Safe for concurrent use: its only
// mutable part is the schema cache.
//
// Tombstones: with delete.tombstone.handling.mode=tombstone (the default since
// 2.5) a delete becomes a null-value record, so the null value IS the delete,
// not just a compaction marker. A record alone cannot tell the two apart, so
// Decode reports every null value as Decoded{Tombstone: true}; the consumer
// must treat flat-json tombstones as deletes (of the record key) only when
// configured to, and drop them otherwise, as for debezium-json.
type FlatJSON struct {
	version, lineage compare.VersionSpec
	// dj supplies the JSON library, the schema cache and key decoding shared
	// with debezium-json; its own version specs are unused.
	dj *DebeziumJSON
}

// NewFlatJSON returns a flat-json decoder that takes each record's version
// from version and, if lineage is set, its lineage from lineage. lsn reads
// __lsn; position reads __source_file, __source_pos and __source_row (or
// __file, __pos, __row); field:<name> reads the row column name, or the
// metadata field when name starts with "__"; offset is the Kafka offset + 1.
func NewFlatJSON(version, lineage compare.VersionSpec) *FlatJSON {
	return &FlatJSON{version: version, lineage: lineage, dj: NewDebeziumJSON(compare.VersionSpec{}, compare.VersionSpec{})}
}

// Decode decodes one record, with the contract of DebeziumJSON.Decode. Every
// error it returns is a *DecodeError.
func (d *FlatJSON) Decode(key, value []byte, m Meta) (Decoded, error) {
	row, sch, tomb, derr := d.readValue(value)
	if derr != nil {
		return Decoded{}, derr
	}
	if tomb {
		return tombstone(d.dj, key)
	}
	// Split the metadata off before anything reads the row as data.
	var md map[string]any
	for name, v := range row {
		if strings.HasPrefix(name, flatMetaPrefix) {
			if md == nil {
				md = make(map[string]any, 4)
			}
			md[name] = v
			delete(row, name)
		}
	}
	var out Decoded
	op, derr := flatOp(md)
	if derr != nil {
		return Decoded{}, derr
	}
	if op == "t" || op == "m" {
		et, derr := flatEventTime(md, m)
		if derr != nil {
			return Decoded{}, derr
		}
		out.Skip, out.EventTime = SkipTruncate, et
		if op == "m" {
			out.Skip = SkipMessage
		}
		return out, nil
	}
	deleted, derr := flatDeleted(md)
	if derr != nil {
		return Decoded{}, derr
	}
	// Either marker makes a delete: rewrite mode sets both, and a record that
	// carries only one of them still says the row is gone.
	out.Op, out.Row = compare.OpUpsert, row
	if op == "d" || deleted {
		out.Op = compare.OpDelete
	}
	var root *conv
	if sch != nil {
		root = sch.root
	}
	if derr := convertRow(out.Row, root, "row"); derr != nil {
		return Decoded{}, derr
	}
	if out.EventTime, derr = flatEventTime(md, m); derr != nil {
		return Decoded{}, derr
	}
	if out.Version, derr = flatVersion(d.version, md, out.Row, m); derr != nil {
		return Decoded{}, derr
	}
	if out.Lineage, derr = flatVersion(d.lineage, md, out.Row, m); derr != nil {
		// An absent lineage only means the row does not say where it came from.
		if derr.Reason != ReasonMissingVersion {
			return Decoded{}, derr
		}
		out.Lineage = compare.Version{}
	}
	if out.Key, derr = d.dj.readKey(key); derr != nil {
		return Decoded{}, derr
	}
	return out, nil
}

// readValue returns the row of a plain or JsonConverter-wrapped value and
// the compiled schema of a wrapped one. A value whose only members are
// "schema" (an object or null) and "payload" is read as the wrapper: a row
// with exactly those two columns and no metadata cannot be told from it.
func (d *FlatJSON) readValue(value []byte) (row map[string]any, e *schemaEntry, tomb bool, derr *DecodeError) {
	if isNull(value) {
		return nil, nil, true, nil
	}
	// Fast path: a cached schema text; only the payload needs parsing.
	if e, payload, ok := d.dj.schemas.splitWrapped(value); ok {
		if derr := checkWrapped(e, payload); derr != nil {
			return nil, nil, false, derr
		}
		if isNull(payload) {
			return nil, nil, true, nil
		}
		if firstByte(payload) == '{' && d.dj.unmarshal(payload, &row) == nil && row != nil {
			return row, e, false, e.valueErr("a row")
		}
		row = nil
		// Fall through so that the error names the whole record.
	}
	if derr := checkJSON("value", value); derr != nil {
		return nil, nil, false, derr
	}
	if firstByte(value) != '{' {
		return nil, nil, false, decodeErr(ReasonMalformed, "value: want a JSON object (the row), got %.40q", value)
	}
	if bytes.Contains(value, []byte(`"payload"`)) {
		var parts map[string]json.RawMessage
		if err := d.dj.unmarshal(value, &parts); err != nil {
			return nil, nil, false, decodeErr(ReasonMalformed, "value: %w", err)
		}
		sch, hasSchema := parts["schema"]
		payload, hasPayload := parts["payload"]
		if len(parts) == 2 && hasSchema && hasPayload && (isNull(sch) || firstByte(sch) == '{') {
			if isNull(payload) {
				return nil, nil, true, nil
			}
			if firstByte(payload) != '{' {
				return nil, nil, false, decodeErr(ReasonMalformed, "value: payload: want a JSON object (the row), got %.40q", payload)
			}
			if err := d.dj.unmarshal(payload, &row); err != nil {
				return nil, nil, false, decodeErr(ReasonMalformed, "value: payload: %w", err)
			}
			if !isNull(sch) {
				e = d.dj.schemas.lookup(sch)
			}
			return row, e, false, e.valueErr("a row")
		}
	}
	if err := d.dj.unmarshal(value, &row); err != nil {
		return nil, nil, false, decodeErr(ReasonMalformed, "value: %w", err)
	}
	if row == nil { // defensive: an object always decodes to a map
		return nil, nil, false, decodeErr(ReasonMalformed, "value: want a JSON object (the row)")
	}
	return row, nil, false, nil
}

// flatOp is __op: "" when absent or null (a plain upsert), else c, u, r, d, t or m.
func flatOp(md map[string]any) (string, *DecodeError) {
	switch v := md["__op"].(type) {
	case nil:
		return "", nil
	case string:
		switch v {
		case "c", "u", "r", "d", "t", "m":
			return v, nil
		}
		return "", decodeErr(ReasonUnknownOp, "__op %.20q", v)
	default:
		return "", decodeErr(ReasonUnknownOp, "__op: want a string, got %s", jsonKind(v))
	}
}

// flatDeleted is __deleted: the string "true"/"false" that Debezium writes,
// or a boolean; absent or null is false.
func flatDeleted(md map[string]any) (bool, *DecodeError) {
	switch v := md["__deleted"].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		switch v {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return false, decodeErr(ReasonBadValue, "__deleted %.20q: want \"true\" or \"false\"", v)
	default:
		return false, decodeErr(ReasonBadValue, "__deleted: want \"true\" or \"false\", got %s", jsonKind(v))
	}
}

// flatNumber returns the first of names present and non-null in md as number
// text (a JSON number, or a string holding one), with the name it came from.
func flatNumber(md map[string]any, names ...string) (json.Number, string, *DecodeError) {
	for _, name := range names {
		switch v := md[name].(type) {
		case nil:
			continue
		case json.Number:
			return v, name, nil
		case string:
			if v == "" {
				return "", name, decodeErr(ReasonBadValue, "%s is an empty string: want an integer", name)
			}
			return json.Number(v), name, nil
		default:
			return "", name, decodeErr(ReasonBadValue, "%s: want an integer, got %s", name, jsonKind(v))
		}
	}
	return "", names[0], nil
}

// flatEventTime is __source_ts_ms (when the change happened in the database),
// else __ts_ms (when the connector processed it), else the record timestamp.
func flatEventTime(md map[string]any, m Meta) (time.Time, *DecodeError) {
	n, name, derr := flatNumber(md, "__source_ts_ms", "__ts_ms")
	if derr != nil {
		return time.Time{}, derr
	}
	if n == "" {
		return m.Timestamp, nil
	}
	ms, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return time.Time{}, decodeErr(ReasonBadValue, "%s %.40q: want an integer", name, n)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// flatVersion reads a record's version per spec from the metadata md and the
// converted row.
func flatVersion(spec compare.VersionSpec, md, row map[string]any, m Meta) (compare.Version, *DecodeError) {
	switch spec.Kind {
	case compare.VersionLSN:
		n, name, derr := flatNumber(md, "__lsn")
		if derr != nil {
			return compare.Version{}, derr
		}
		a, derr := sourceUint(name, n)
		return compare.Version{A: a}, derr
	case compare.VersionPosition:
		return flatPosition(md)
	case compare.VersionField:
		if strings.HasPrefix(spec.Field, flatMetaPrefix) {
			return fieldVersion(spec.Field, md)
		}
		return fieldVersion(spec.Field, row)
	}
	// offset (and the zero spec) do not read the record.
	return versionOf(spec, &envelopeWire{}, row, m)
}

// flatPosition is position (binlog file number, pos, row) from
// add.fields=source.file,source.pos,source.row or file,pos,row.
func flatPosition(md map[string]any) (compare.Version, *DecodeError) {
	fileName := "__source_file"
	fv, ok := md[fileName]
	if fv == nil {
		fileName = "__file"
		fv, ok = md[fileName]
	}
	if fv == nil {
		if ok {
			return compare.Version{}, decodeErr(ReasonMissingVersion, "__source_file (or __file) is null")
		}
		return compare.Version{}, decodeErr(ReasonMissingVersion, "__source_file (or __file) is missing")
	}
	file, isString := fv.(string)
	if !isString {
		return compare.Version{}, decodeErr(ReasonBadValue, "%s: want a binlog file name, got %s", fileName, jsonKind(fv))
	}
	if file == "" {
		return compare.Version{}, decodeErr(ReasonMissingVersion, "%s is empty", fileName)
	}
	num, err := strconv.ParseUint(file[strings.LastIndexByte(file, '.')+1:], 10, 64)
	if err != nil {
		return compare.Version{}, decodeErr(ReasonBadValue, "%s %.60q: want a numeric suffix like mysql-bin.000003", fileName, file)
	}
	posText, posName, derr := flatNumber(md, "__source_pos", "__pos")
	if derr != nil {
		return compare.Version{}, derr
	}
	if posText == "" {
		return compare.Version{}, decodeErr(ReasonMissingVersion, "__source_pos (or __pos) is missing or null")
	}
	pos, derr := sourceUint(posName, posText)
	if derr != nil {
		return compare.Version{}, derr
	}
	rowText, rowName, derr := flatNumber(md, "__source_row", "__row")
	if derr != nil {
		return compare.Version{}, derr
	}
	var r uint64
	if rowText != "" { // absent in some snapshot events: the first row
		if r, derr = sourceUint(rowName, rowText); derr != nil {
			return compare.Version{}, derr
		}
	}
	return compare.Version{A: num, B: pos, C: r}, nil
}
