package consumer

import (
	"context"
	"strings"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/schemas"
)

// FlatAvro decodes what Debezium's ExtractNewRecordState SMT ("unwrap")
// writes through Confluent's AvroConverter: a row record whose "__" fields
// are metadata (__op, __deleted, __lsn, __source_ts_ms, __source_file …), in
// the Confluent wire format with its writer schema in the registry. It has
// FlatJSON's semantics, including tombstones (see FlatJSON), and
// DebeziumAvro's value shapes and keys. Safe for concurrent use.
type FlatAvro struct {
	version, lineage compare.VersionSpec
	avro             *avroReader
	dj               *DebeziumJSON // for JSON keys; its version specs are unused
}

var (
	_ Decoder        = (*FlatAvro)(nil)
	_ ContextDecoder = (*FlatAvro)(nil)
)

// NewFlatAvro returns a flat-avro decoder that reads writer schemas from reg
// and versions as NewFlatJSON does.
func NewFlatAvro(reg *schemas.Registry, version, lineage compare.VersionSpec) *FlatAvro {
	return &FlatAvro{version: version, lineage: lineage, avro: newAvroReader(reg),
		dj: NewDebeziumJSON(compare.VersionSpec{}, compare.VersionSpec{})}
}

// Decode is DecodeContext without a ctx of its own: a registry request is
// still bounded by the registry's timeout.
func (d *FlatAvro) Decode(key, value []byte, m Meta) (Decoded, error) {
	return d.DecodeContext(context.Background(), key, value, m)
}

// DecodeContext decodes one record, with the contract of
// DebeziumAvro.DecodeContext.
func (d *FlatAvro) DecodeContext(ctx context.Context, key, value []byte, m Meta) (Decoded, error) {
	if len(value) == 0 {
		return Decoded{Tombstone: true}, nil
	}
	native, root, err := d.avro.read(ctx, value, "value")
	if err != nil {
		return Decoded{}, err
	}
	if native == nil { // a null row of a nullable schema
		return Decoded{Tombstone: true}, nil
	}
	row, md, derr := flatAvroRow(native, root)
	if derr != nil {
		return Decoded{}, derr
	}
	var out Decoded
	op, derr := flatOp(md)
	if derr != nil {
		return Decoded{}, derr
	}
	if op == "t" || op == "m" {
		out.Skip = SkipTruncate
		if op == "m" {
			out.Skip = SkipMessage
		}
		if out.EventTime, derr = flatEventTime(md, m); derr != nil {
			return Decoded{}, derr
		}
		return out, nil
	}
	deleted, derr := flatDeleted(md)
	if derr != nil {
		return Decoded{}, derr
	}
	// Either marker makes a delete, as in FlatJSON.
	out.Op, out.Row = compare.OpUpsert, row
	if op == "d" || deleted {
		out.Op = compare.OpDelete
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
	if out.Key, err = d.avro.readKey(ctx, key, d.dj); err != nil {
		return Decoded{}, err
	}
	return out, nil
}

// flatAvroRow converts the row record and splits its "__" metadata off
// before anything reads the row as data.
func flatAvroRow(native any, root *avroNode) (row, md map[string]any, derr *DecodeError) {
	row, ok := native.(map[string]any)
	if !ok || root.kind != avroRecord {
		return nil, nil, decodeErr(ReasonUnknownSchema, "value schema %s: want a row record", root.describe())
	}
	for _, f := range root.fields {
		if !strings.HasPrefix(f.name, flatMetaPrefix) {
			cv, err := avroColumn(row[f.name], f.node)
			if err != nil {
				return nil, nil, columnErr(f.name, err)
			}
			row[f.name] = cv
			continue
		}
		cv, err := avroConvert(row[f.name], f.node)
		if err != nil {
			return nil, nil, decodeErr(ReasonBadValue, "%s: %w", f.name, err)
		}
		if md == nil {
			md = make(map[string]any, 4)
		}
		md[f.name] = cv
		delete(row, f.name)
	}
	return row, md, nil
}
