package schemas

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/linkedin/goavro/v2"
)

// The schemas of recon's own output events. They are the Avro twins of the
// JSON forms that repair.Divergence and repair.Repair render (DESIGN §6).
var (
	//go:embed divergence.avsc
	divergenceAvsc string
	//go:embed repair.avsc
	repairAvsc string
)

// OutputDivergenceSchema is the Avro schema of divergence events, dev.recon.Divergence.
func OutputDivergenceSchema() string { return divergenceAvsc }

// OutputRepairSchema is the Avro schema of repair events, dev.recon.Repair.
func OutputRepairSchema() string { return repairAvsc }

// OutputCodec converts one kind of output event between its JSON form, as the
// outbox holds it, and Avro. The conversion follows the schema, so it refuses
// a JSON field the schema has no place for rather than drop it: the Avro form
// never loses what the JSON form says. Safe for concurrent use.
type OutputCodec struct {
	root  *avroType
	codec *goavro.Codec
}

// NewOutputCodec parses an output event schema such as OutputDivergenceSchema.
func NewOutputCodec(schema string) (*OutputCodec, error) {
	codec, err := goavro.NewCodec(schema)
	if err != nil {
		return nil, fmt.Errorf("parsing output schema: %w", err)
	}
	root, err := parseAvroType(schema)
	if err != nil {
		return nil, fmt.Errorf("parsing output schema: %w", err)
	}
	return &OutputCodec{root: root, codec: codec}, nil
}

// Name is the full name of the event record, e.g. dev.recon.Divergence.
func (c *OutputCodec) Name() string { return c.root.name }

// Native turns the JSON form of an event into goavro's native form.
func (c *OutputCodec) Native(event []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber() // an int64 or a digest-sized number must not pass through float64
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("reading %s as JSON: %w", c.root.name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("reading %s as JSON: data after the event", c.root.name)
	}
	n, err := toNative(c.root, v, "")
	if err != nil {
		return nil, fmt.Errorf("converting %s to avro: %w", c.root.name, err)
	}
	return n, nil
}

// JSON renders goavro's native form of an event, as decoded with this schema
// or one that resolves to it, in the JSON form. A field that the JSON form
// omits when empty (resolved_at, reflects, approved_by) comes back as null.
func (c *OutputCodec) JSON(native any) ([]byte, error) {
	b, err := appendJSON(nil, c.root, native, "")
	if err != nil {
		return nil, fmt.Errorf("rendering %s as JSON: %w", c.root.name, err)
	}
	return b, nil
}

// Binary encodes the JSON form of an event as Avro binary, without a header.
func (c *OutputCodec) Binary(event []byte) ([]byte, error) { return c.AppendBinary(nil, event) }

// AppendBinary appends the Avro binary form of the JSON event to b.
func (c *OutputCodec) AppendBinary(b, event []byte) ([]byte, error) {
	n, err := c.Native(event)
	if err != nil {
		return nil, err
	}
	out, err := c.codec.BinaryFromNative(b, n)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", c.root.name, err)
	}
	return out, nil
}

// FromBinary decodes Avro binary written with this schema into the JSON form.
func (c *OutputCodec) FromBinary(b []byte) ([]byte, error) {
	n, rest, err := c.codec.NativeFromBinary(b)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", c.root.name, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("decoding %s: %d bytes after the record", c.root.name, len(rest))
	}
	return c.JSON(n)
}
