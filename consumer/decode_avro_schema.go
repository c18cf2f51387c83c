package consumer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// An Avro writer schema compiled for recon: the shape of the binary (to
// check it before goavro allocates for it) and, per type, how goavro's
// native value becomes the value the JSON decoders produce for the same
// column. Confluent's AvroConverter keeps a Connect type's name as
// "connect.name" and its parameters as "connect.parameters"; only Connect's
// Decimal, Date, Time and Timestamp also get an Avro logicalType, which goavro
// decodes itself (cdc-formats.md §2).

type avroKind uint8

const (
	avroNull avroKind = iota + 1
	avroBoolean
	avroInt
	avroLong
	avroFloat
	avroDouble
	avroBytes
	avroString
	avroRecord
	avroEnum
	avroArray
	avroMap
	avroFixed
	avroUnion
)

var avroPrimitives = map[string]avroKind{
	"null": avroNull, "boolean": avroBoolean, "int": avroInt, "long": avroLong, "float": avroFloat,
	"double": avroDouble, "bytes": avroBytes, "string": avroString,
}

// goavroLogical are the logical types goavro v2.15 decodes; it ignores others.
var goavroLogical = map[string]bool{
	"long.timestamp-millis": true, "long.timestamp-micros": true, "int.time-millis": true,
	"long.time-micros": true, "int.date": true, "bytes.decimal": true, "fixed.decimal": true,
	"string.validated-string": true,
}

// avroNode is one type of a writer schema. Named types referenced again
// share their node, so the graph may be cyclic.
type avroNode struct {
	kind avroKind
	// name is goavro's name for the type as a union member: the full name
	// of a named type, else the primitive name with its logical type
	// ("long.timestamp-millis").
	name     string
	conv     convKind      // 0: the value keeps its shape; else as the JSON decoders' conv
	unit     time.Duration // convTime, convTimestamp
	scale    int32         // convDecimal
	size     int           // fixed
	symbols  int           // enum
	fields   []avroFieldNode
	items    *avroNode   // array items, map values
	branches []*avroNode // union members
}

type avroFieldNode struct {
	name string
	node *avroNode
}

// avroSchemaParser resolves named types as Avro does: a dotted name is full,
// else it takes the enclosing namespace.
type avroSchemaParser struct {
	named map[string]*avroNode
}

// compileAvroSchema compiles a schema text that goavro has already accepted.
func compileAvroSchema(text string) (*avroNode, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber() // connect.parameters may hold numbers; keep them exact
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("schema JSON: %w", err)
	}
	p := avroSchemaParser{named: map[string]*avroNode{}}
	return p.parse(v, "")
}

func (p *avroSchemaParser) parse(v any, ns string) (*avroNode, error) {
	switch s := v.(type) {
	case string:
		return p.reference(s, ns)
	case []any:
		n := &avroNode{kind: avroUnion, name: "union"}
		for i, b := range s {
			bn, err := p.parse(b, ns)
			if err != nil {
				return nil, fmt.Errorf("union member %d: %w", i, err)
			}
			n.branches = append(n.branches, bn)
		}
		return n, nil
	case map[string]any:
		return p.complex(s, ns)
	}
	return nil, fmt.Errorf("type %T: want a name, a union or an object", v)
}

func (p *avroSchemaParser) reference(s, ns string) (*avroNode, error) {
	if k, ok := avroPrimitives[s]; ok {
		return &avroNode{kind: k, name: s}, nil
	}
	if n := p.named[s]; n != nil {
		return n, nil
	}
	if n := p.named[ns+"."+s]; ns != "" && n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("unknown type %.60q", s)
}

func (p *avroSchemaParser) complex(s map[string]any, ns string) (*avroNode, error) {
	var typ string
	switch t := s["type"].(type) {
	case string:
		typ = t
	case nil:
		return nil, fmt.Errorf("type without \"type\"")
	default:
		// {"type": {...}} or {"type": [...]}: the attributes around it are ignored.
		return p.parse(t, ns)
	}
	switch typ {
	case "record", "error", "enum", "fixed":
		return p.namedType(s, typ, ns)
	case "array", "map":
		n := &avroNode{kind: avroArray, name: typ}
		key := "items"
		if typ == "map" {
			n.kind, key = avroMap, "values"
		}
		items, err := p.parse(s[key], ns)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", typ, key, err)
		}
		n.items = items
		return n, nil
	}
	k, ok := avroPrimitives[typ]
	if !ok {
		return p.reference(typ, ns)
	}
	n := &avroNode{kind: k, name: typ}
	if lt, _ := s["logicalType"].(string); goavroLogical[typ+"."+lt] {
		n.name = typ + "." + lt
	}
	if err := n.logical(s); err != nil {
		return nil, err
	}
	return n, nil
}

func (p *avroSchemaParser) namedType(s map[string]any, typ, ns string) (*avroNode, error) {
	name, _ := s["name"].(string)
	if name == "" {
		return nil, fmt.Errorf("%s without a name", typ)
	}
	full := name
	if !strings.Contains(name, ".") {
		if own, ok := s["namespace"].(string); ok {
			ns = own
		}
		if ns != "" {
			full = ns + "." + name
		}
	}
	ns = full[:max(strings.LastIndexByte(full, '.'), 0)]
	n := &avroNode{name: full}
	p.named[full] = n // before the fields: a record may refer to itself
	switch typ {
	case "enum":
		syms, _ := s["symbols"].([]any)
		n.kind, n.symbols = avroEnum, len(syms)
	case "fixed":
		n.kind, n.size = avroFixed, int(schemaInt(s["size"]))
		if err := n.logical(s); err != nil {
			return nil, err
		}
	default:
		n.kind = avroRecord
		fields, _ := s["fields"].([]any)
		for i, f := range fields {
			fm, _ := f.(map[string]any)
			fname, _ := fm["name"].(string)
			fn, err := p.parse(fm["type"], ns)
			if err != nil {
				return nil, fmt.Errorf("record %s field %d %.60q: %w", full, i, fname, err)
			}
			n.fields = append(n.fields, avroFieldNode{name: fname, node: fn})
		}
		if cn, _ := s["connect.name"].(string); cn == nameVarScaleDecimal {
			n.conv = convVarDecimal
		}
	}
	return n, nil
}

// logical reads the Connect or Avro logical type of a primitive or fixed.
// The Avro logicalType wins where goavro decodes it: the Go type of its
// result tells which unit applies, so only the scale of a decimal matters.
func (n *avroNode) logical(s map[string]any) error {
	if lt, _ := s["logicalType"].(string); lt == "decimal" && (n.kind == avroBytes || n.kind == avroFixed) {
		// goavro has checked it: absent means 0, never negative.
		return n.setDecimal(schemaInt(s["scale"]))
	}
	cn, _ := s["connect.name"].(string)
	switch cn {
	case nameDecimal:
		params, _ := s["connect.parameters"].(map[string]any)
		scale, err := decimalScale(params)
		if err != nil {
			return err
		}
		return n.setDecimal(int64(scale))
	case nameDate, nameConnectDate:
		n.conv = convDate
	case nameTime, nameConnectTime:
		n.conv, n.unit = convTime, time.Millisecond
	case nameMicroTime:
		n.conv, n.unit = convTime, time.Microsecond
	case nameNanoTime:
		n.conv, n.unit = convTime, time.Nanosecond
	case nameTimestamp, nameConnectTS:
		n.conv, n.unit = convTimestamp, time.Millisecond
	case nameMicroTimestamp:
		n.conv, n.unit = convTimestamp, time.Microsecond
	case nameNanoTimestamp:
		n.conv, n.unit = convTimestamp, time.Nanosecond
	case nameZonedTimestamp:
		n.conv = convZoned
	}
	return nil
}

func (n *avroNode) setDecimal(scale int64) error {
	if scale > maxAvroDecimalScale || scale < -maxAvroDecimalScale {
		return fmt.Errorf("decimal scale %d: more than %d digits", scale, maxAvroDecimalScale)
	}
	n.conv, n.scale = convDecimal, int32(scale)
	return nil
}

// schemaInt reads an integer attribute that goavro has validated; 0 if absent.
func schemaInt(v any) int64 {
	n, _ := v.(json.Number)
	i, _ := n.Int64()
	return i
}

// field returns the node of a record's field, or nil.
func (n *avroNode) field(name string) *avroNode {
	for i := range n.fields {
		if n.fields[i].name == name {
			return n.fields[i].node
		}
	}
	return nil
}

// describe names a node in error messages.
func (n *avroNode) describe() string {
	switch n.kind {
	case avroRecord, avroEnum, avroFixed:
		return strconv.Quote(n.name)
	}
	return n.name
}
