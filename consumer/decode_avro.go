package consumer

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/linkedin/goavro/v2"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/schemas"
)

// DebeziumAvro decodes Debezium change events written by Confluent's
// AvroConverter: the Confluent wire format (magic byte 0, a 4-byte big-endian
// schema id, Avro binary), each record read with its own writer schema from
// the schema registry, so records written before and after a schema change
// (an added nullable column, an int widened to a long) both decode. Values
// take the shapes of DebeziumJSON's (see decode_avro_value.go), so that the
// same row digests the same in both formats. Keys may be Avro, JSON (with or
// without the schema wrapper) or anything else, such as a StringConverter
// key: that names no columns, and the key fields come from the row. Safe for
// concurrent use.
type DebeziumAvro struct {
	version, lineage compare.VersionSpec
	avro             *avroReader
	dj               *DebeziumJSON // for JSON keys; its version specs are unused
}

var (
	_ Decoder        = (*DebeziumAvro)(nil)
	_ ContextDecoder = (*DebeziumAvro)(nil)
)

// NewDebeziumAvro returns a decoder that reads writer schemas from reg and
// versions as NewDebeziumJSON does.
func NewDebeziumAvro(reg *schemas.Registry, version, lineage compare.VersionSpec) *DebeziumAvro {
	return &DebeziumAvro{version: version, lineage: lineage, avro: newAvroReader(reg),
		dj: NewDebeziumJSON(compare.VersionSpec{}, compare.VersionSpec{})}
}

// Decode is DecodeContext without a ctx of its own: a registry request is
// still bounded by the registry's timeout.
func (d *DebeziumAvro) Decode(key, value []byte, m Meta) (Decoded, error) {
	return d.DecodeContext(context.Background(), key, value, m)
}

// DecodeContext decodes one record. An error is a *DecodeError, or an
// *UnavailableError when the writer schema could not be fetched: then the
// record may be fine and is worth decoding again later.
func (d *DebeziumAvro) DecodeContext(ctx context.Context, key, value []byte, m Meta) (Decoded, error) {
	if len(value) == 0 {
		return Decoded{Tombstone: true}, nil
	}
	native, root, err := d.avro.read(ctx, value, "value")
	if err != nil {
		return Decoded{}, err
	}
	if native == nil { // a null envelope of a nullable schema
		return Decoded{Tombstone: true}, nil
	}
	envm, ok := native.(map[string]any)
	if !ok || root.kind != avroRecord || root.field("op") == nil {
		return Decoded{}, decodeErr(ReasonUnknownSchema, "value schema %s: want a Debezium envelope record (before, after, source, op)", root.describe())
	}
	op, derr := avroOp(envm["op"], root.field("op"), "op")
	if derr != nil {
		return Decoded{}, derr
	}
	env, derr := avroEnvelope(envm["source"], root.field("source"))
	if derr != nil {
		return Decoded{}, derr
	}
	var out Decoded
	switch op {
	case "c", "u", "r":
		if out.Row, derr = avroRow(envm["after"], root.field("after"), "after"); derr != nil {
			return Decoded{}, derr
		}
		if out.Row == nil {
			return Decoded{}, decodeErr(ReasonMalformed, "op %q without \"after\"", op)
		}
		out.Op = compare.OpUpsert
	case "d":
		if out.Row, derr = avroRow(envm["before"], root.field("before"), "before"); derr != nil {
			return Decoded{}, derr
		}
		out.Op = compare.OpDelete
	case "t", "m":
		out.Skip = SkipTruncate
		if op == "m" {
			out.Skip = SkipMessage
		}
		out.EventTime, derr = eventTime(env, m)
		if derr != nil {
			return Decoded{}, derr
		}
		return out, nil
	case "":
		return Decoded{}, decodeErr(ReasonMalformed, "missing \"op\"")
	default:
		return Decoded{}, decodeErr(ReasonUnknownOp, "op %.20q", op)
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
	if out.Key, err = d.avro.readKey(ctx, key, d.dj); err != nil {
		return Decoded{}, err
	}
	return out, nil
}

// avroOp reads a string field such as op; null or absent is "".
func avroOp(v any, n *avroNode, name string) (string, *DecodeError) {
	if n == nil {
		return "", nil
	}
	cv, err := avroConvert(v, n)
	if err != nil {
		return "", decodeErr(ReasonMalformed, "%s: %w", name, err)
	}
	switch s := cv.(type) {
	case nil:
		return "", nil
	case string:
		return s, nil
	}
	return "", decodeErr(ReasonMalformed, "%s: want a string, got %s", name, jsonKind(cv))
}

// avroEnvelope reads the source fields that versions and event times use
// into the JSON decoder's envelope, whose helpers then apply unchanged. Only
// those fields are converted: the rest of source is never read.
func avroEnvelope(v any, n *avroNode) (*envelopeWire, *DecodeError) {
	env := &envelopeWire{}
	if n == nil {
		return env, nil
	}
	v, n, err := avroUnwrap(v, n)
	if err != nil {
		return nil, decodeErr(ReasonMalformed, "source: %w", err)
	}
	src, _ := v.(map[string]any)
	if src == nil || n.kind != avroRecord {
		return env, nil
	}
	for _, f := range []struct {
		name string
		into *json.Number
	}{{"ts_ms", &env.Source.TsMs}, {"lsn", &env.Source.LSN}, {"pos", &env.Source.Pos}, {"row", &env.Source.Row}} {
		v, derr := sourceField(src, n, f.name)
		switch x := v.(type) {
		case nil:
			if derr != nil {
				return nil, derr
			}
		case json.Number:
			*f.into = x
		default:
			return nil, decodeErr(ReasonBadValue, "source.%s: want an integer, got %s", f.name, jsonKind(x))
		}
	}
	v, derr := sourceField(src, n, "file")
	switch x := v.(type) {
	case nil:
		if derr != nil {
			return nil, derr
		}
	case string:
		env.Source.File = x
	default:
		return nil, decodeErr(ReasonBadValue, "source.file: want a string, got %s", jsonKind(x))
	}
	return env, nil
}

// sourceField converts the source field name; nil when absent or null.
func sourceField(src map[string]any, n *avroNode, name string) (any, *DecodeError) {
	fn := n.field(name)
	if fn == nil {
		return nil, nil
	}
	v, err := avroConvert(src[name], fn)
	if err != nil {
		return nil, decodeErr(ReasonBadValue, "source.%s: %w", name, err)
	}
	return v, nil
}

// avroRow converts a before or after row; nil when it is null.
func avroRow(v any, n *avroNode, what string) (map[string]any, *DecodeError) {
	if n == nil {
		return nil, nil
	}
	v, n, err := avroUnwrap(v, n)
	if err != nil {
		return nil, decodeErr(ReasonMalformed, "%s: %w", what, err)
	}
	if v == nil {
		return nil, nil
	}
	row, ok := v.(map[string]any)
	if !ok || n.kind != avroRecord {
		return nil, decodeErr(ReasonUnknownSchema, "%s: schema %s: want a row record", what, n.describe())
	}
	for _, f := range n.fields {
		cv, err := avroColumn(row[f.name], f.node)
		if err != nil {
			return nil, columnErr(f.name, err)
		}
		row[f.name] = cv
	}
	return row, nil
}

// columnErr is convertRow's error for a column that does not fit its type.
func columnErr(name string, err error) *DecodeError {
	reason := ReasonBadValue
	switch {
	case errors.Is(err, errOversized):
		reason = ReasonOversized
	case errors.Is(err, errInvalidUTF8):
		reason = ReasonInvalidUTF8
	}
	return &DecodeError{Reason: reason, Err: fmt.Errorf("row column %q: %w", name, err)}
}

// avroReader turns Confluent-framed Avro into native values, with the writer
// schema of each record's id, and keeps each compiled schema: ids never change
// meaning. It holds only schemas the registry has, so it is bounded by the
// registry's size.
type avroReader struct {
	reg   *schemas.Registry
	mu    sync.RWMutex
	plans map[int]*avroPlan
}

// avroPlan is one writer schema, compiled; err is set instead when recon
// cannot read it, which is as definitive as the schema.
type avroPlan struct {
	codec *goavro.Codec
	root  *avroNode
	err   error
}

func newAvroReader(reg *schemas.Registry) *avroReader {
	return &avroReader{reg: reg, plans: make(map[int]*avroPlan)}
}

// confluentHeader is the magic byte 0 and a 4-byte big-endian schema id.
const confluentHeader = 5

// read decodes one framed datum; what ("key", "value") names it in errors.
func (r *avroReader) read(ctx context.Context, b []byte, what string) (any, *avroNode, error) {
	switch {
	case len(b) > 0 && b[0] != 0:
		return nil, nil, decodeErr(ReasonBadMagic, "%s: magic byte %#02x: want 0 (Confluent wire format)", what, b[0])
	case len(b) < confluentHeader:
		return nil, nil, decodeErr(ReasonBadMagic, "%s: %d bytes: shorter than the Confluent wire format header", what, len(b))
	}
	id := int(binary.BigEndian.Uint32(b[1:confluentHeader]))
	p, err := r.plan(ctx, id)
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			return nil, nil, &DecodeError{Reason: de.Reason, Err: fmt.Errorf("%s: %w", what, de.Err)}
		}
		return nil, nil, err
	}
	payload := b[confluentHeader:]
	rest, err := checkAvro(p.root, payload)
	switch {
	case errors.Is(err, errAvroShort):
		return nil, nil, decodeErr(ReasonTruncated, "%s: schema id %d: %w", what, id, err)
	case err != nil:
		return nil, nil, decodeErr(ReasonMalformed, "%s: schema id %d: %w", what, id, err)
	case len(rest) > 0:
		return nil, nil, decodeErr(ReasonMalformed, "%s: %d bytes left after the datum of schema id %d", what, len(rest), id)
	}
	native, err := nativeFromBinary(p.codec, payload)
	if err != nil {
		return nil, nil, decodeErr(ReasonMalformed, "%s: schema id %d: %w", what, id, err)
	}
	return native, p.root, nil
}

// nativeFromBinary is goavro's decoder, with its panics turned into errors:
// the bytes come from producers recon does not control.
func nativeFromBinary(c *goavro.Codec, b []byte) (native any, err error) {
	defer func() {
		if p := recover(); p != nil {
			native, err = nil, fmt.Errorf("goavro panicked: %v", p)
		}
	}()
	native, _, err = c.NativeFromBinary(b)
	return native, err
}

// plan returns the compiled writer schema of id. Its errors are a
// *DecodeError (an answer about the id) or an *UnavailableError.
func (r *avroReader) plan(ctx context.Context, id int) (*avroPlan, error) {
	r.mu.RLock()
	p := r.plans[id]
	r.mu.RUnlock()
	if p == nil {
		s, err := r.reg.Schema(ctx, id)
		switch {
		case errors.Is(err, schemas.ErrUnknownSchemaID):
			return nil, &DecodeError{Reason: ReasonUnknownSchemaID, Err: err}
		case errors.Is(err, schemas.ErrUnusableSchema):
			p = &avroPlan{err: err}
		case err != nil:
			return nil, &UnavailableError{Err: err}
		default:
			p = &avroPlan{codec: s.Codec}
			if p.root, err = compileAvroSchema(s.Text); err != nil {
				p.err = fmt.Errorf("schema id %d: %w", id, err)
			}
		}
		r.mu.Lock()
		if q := r.plans[id]; q != nil {
			p = q
		} else {
			r.plans[id] = p
		}
		r.mu.Unlock()
	}
	if p.err != nil {
		return nil, &DecodeError{Reason: ReasonUnknownSchema, Err: p.err}
	}
	return p, nil
}

// readKey decodes a record key: Avro when it starts with the magic byte, a
// JSON object as DebeziumJSON reads it, and nil (the key fields come from
// the row) for anything else, such as StringConverter's text.
func (r *avroReader) readKey(ctx context.Context, key []byte, dj *DebeziumJSON) (map[string]any, error) {
	switch {
	case len(key) == 0:
		return nil, nil
	case key[0] == 0:
		native, n, err := r.read(ctx, key, "key")
		if err != nil {
			return nil, err
		}
		k, err := avroConvert(native, n)
		if err != nil {
			reason := ReasonBadValue
			if errors.Is(err, errInvalidUTF8) {
				reason = ReasonInvalidUTF8
			}
			return nil, decodeErr(reason, "key: %w", err)
		}
		m, _ := k.(map[string]any) // a primitive key names no column
		return m, nil
	case firstByte(key) == '{':
		k, derr := dj.readKey(key)
		if derr != nil {
			return nil, derr
		}
		return k, nil
	}
	return nil, nil
}
