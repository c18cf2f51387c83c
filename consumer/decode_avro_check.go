package consumer

import (
	"errors"
	"fmt"
)

// Avro binary is checked against its writer schema before goavro decodes it.
// goavro trusts the counts it reads: an array header claiming 2^31 items makes
// it allocate 32 GiB for a ten-byte record, and a deep recursive union
// overflows its stack. The check bounds both, and tells a record that ends
// early (truncated) from one that is corrupt.

// maxAvroDepth bounds nesting (records, unions, arrays, maps). Debezium
// envelopes nest four deep; recursive schemas are what this stops.
const maxAvroDepth = 64

// maxZeroSizeItems bounds, per datum, the array items that take no bytes at
// all (null, an empty record): their count is the only cost.
const maxZeroSizeItems = 1 << 16

var (
	errAvroShort = errors.New("data ends early")
	errAvroBad   = errors.New("corrupt data")
)

// checkAvro walks b as one datum of n and returns the bytes after it.
func checkAvro(n *avroNode, b []byte) ([]byte, error) {
	var c avroChecker
	return c.check(n, b, 0)
}

// avroChecker walks one datum.
type avroChecker struct {
	zeroItems int64 // array items of zero-size types seen so far
}

func (c *avroChecker) check(n *avroNode, b []byte, depth int) ([]byte, error) {
	if depth > maxAvroDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", errAvroBad, maxAvroDepth)
	}
	switch n.kind {
	case avroNull:
		return b, nil
	case avroBoolean:
		if len(b) == 0 {
			return nil, errAvroShort
		}
		if b[0] > 1 {
			return nil, fmt.Errorf("%w: boolean byte %d", errAvroBad, b[0])
		}
		return b[1:], nil
	case avroInt, avroLong:
		_, rest, err := avroVarint(b)
		return rest, err
	case avroFloat:
		return avroSkip(b, 4)
	case avroDouble:
		return avroSkip(b, 8)
	case avroBytes, avroString:
		size, rest, err := avroVarint(b)
		if err != nil {
			return nil, err
		}
		if size < 0 {
			return nil, fmt.Errorf("%w: negative length %d", errAvroBad, size)
		}
		return avroSkip(rest, size)
	case avroFixed:
		return avroSkip(b, int64(n.size))
	case avroEnum:
		i, rest, err := avroVarint(b)
		if err == nil && (i < 0 || i >= int64(n.symbols)) {
			err = fmt.Errorf("%w: enum %s index %d of %d symbols", errAvroBad, n.describe(), i, n.symbols)
		}
		return rest, err
	case avroUnion:
		i, rest, err := avroVarint(b)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(n.branches)) {
			return nil, fmt.Errorf("%w: union index %d of %d members", errAvroBad, i, len(n.branches))
		}
		return c.check(n.branches[i], rest, depth+1)
	case avroRecord:
		for _, f := range n.fields {
			var err error
			if b, err = c.check(f.node, b, depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	case avroArray, avroMap:
		return c.blocks(n, b, depth)
	}
	return nil, fmt.Errorf("%w: type %d", errAvroBad, n.kind)
}

// blocks walks the blocks of an array or map: a count (negative: followed
// by the block's byte size), its items, until a zero count.
func (c *avroChecker) blocks(n *avroNode, b []byte, depth int) ([]byte, error) {
	zeroSize := n.kind == avroArray && avroZeroSize(n.items, 0)
	key := &avroNode{kind: avroString, name: "string"} // of map entries
	for {
		count, rest, err := avroVarint(b)
		if err != nil {
			return nil, err
		}
		b = rest
		if count == 0 {
			return b, nil
		}
		if count < 0 {
			if count == -count { // MinInt64
				return nil, fmt.Errorf("%w: block count %d", errAvroBad, count)
			}
			count = -count
			if _, b, err = avroVarint(b); err != nil {
				return nil, err
			}
		}
		// Each item takes at least a byte, unless it takes none at all.
		switch {
		case zeroSize:
			if count > maxZeroSizeItems-c.zeroItems {
				return nil, fmt.Errorf("%w: over %d array items of a zero-size type", errAvroBad, maxZeroSizeItems)
			}
			c.zeroItems += count
		case count > int64(len(b)):
			return nil, fmt.Errorf("%w: %d items in %d bytes", errAvroShort, count, len(b))
		}
		for range count {
			if n.kind == avroMap {
				if b, err = c.check(key, b, depth+1); err != nil {
					return nil, err
				}
			}
			if b, err = c.check(n.items, b, depth+1); err != nil {
				return nil, err
			}
		}
	}
}

// avroZeroSize reports whether a datum of n can take no bytes: null, and
// records (or fixed) made of nothing else. A union takes its index byte.
func avroZeroSize(n *avroNode, depth int) bool {
	switch n.kind {
	case avroNull:
		return true
	case avroFixed:
		return n.size == 0
	case avroRecord:
		if depth > maxAvroDepth { // a record that contains itself without a union has no datum at all
			return true
		}
		for _, f := range n.fields {
			if !avroZeroSize(f.node, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// avroVarint reads a zigzag varint of at most 10 bytes, as int and long are
// written.
func avroVarint(b []byte) (int64, []byte, error) {
	var u uint64
	for i := 0; i < len(b); i++ {
		if i == 10 {
			return 0, nil, fmt.Errorf("%w: varint longer than 10 bytes", errAvroBad)
		}
		u |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return int64(u>>1) ^ -int64(u&1), b[i+1:], nil
		}
	}
	return 0, nil, errAvroShort
}

func avroSkip(b []byte, n int64) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: negative size %d", errAvroBad, n)
	}
	if n > int64(len(b)) {
		return nil, fmt.Errorf("%w: %d bytes wanted, %d left", errAvroShort, n, len(b))
	}
	return b[n:], nil
}
