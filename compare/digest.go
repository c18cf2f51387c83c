package compare

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"slices"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// digestFormat is the first byte under the HMAC. Changing how rows are
// serialized must change it, so that old and new digests never collide.
const digestFormat = 1

// maxPooledBuf keeps one huge row from pinning its buffer in the pool forever.
const maxPooledBuf = 64 << 10

// Hasher computes keyed row digests. Digests are published in events, so they
// must reveal nothing about low-entropy values (a status, an amount): the
// Digest is HMAC-SHA256(key, serialization)[:16]. The serialization covers the
// per-column hashes of Columns, which are unkeyed and so are kept only in
// recon's own state; with them a row whose TOAST columns were not re-sent is
// digested with their previous values.
//
// A Hasher is safe for concurrent use.
type Hasher struct {
	key  []byte
	pool sync.Pool // of *hashState
}

// hashState is the per-call scratch: an HMAC whose Reset restores the keyed
// state without rehashing the key, and buffers reused across calls.
type hashState struct {
	mac    hash.Hash
	cols   []column
	sorted bool // cols came sorted (Digest of Columns)
	buf    []byte
	sum    [sha256.Size]byte
}

type column struct {
	name string
	hash uint64
}

// NewHasher returns a Hasher keyed with a copy of key. The key must be secret
// and shared by every instance that compares digests; checking that it is set
// is the config's job.
func NewHasher(key []byte) *Hasher {
	h := &Hasher{key: append([]byte(nil), key...)}
	h.pool.New = func() any { return &hashState{mac: hmac.New(sha256.New, h.key)} }
	return h
}

// ColumnHash is the 64-bit xxhash of a value's kind byte, its text length as
// a uvarint, and its text. The kind keeps Int 42 apart from String "42" and
// Float 42; the length keeps the encoding prefix-free.
func ColumnHash(v Value) uint64 {
	var pre [1 + binary.MaxVarintLen64]byte
	pre[0] = byte(v.Kind)
	n := binary.PutUvarint(pre[1:], uint64(len(v.Text)))
	var d xxhash.Digest
	d.Reset()
	d.Write(pre[:1+n])
	d.WriteString(v.Text)
	return d.Sum64()
}

// Column is one column's name and hash (see ColumnHash).
type Column struct {
	Name string
	Hash uint64
}

// Columns are a row's column hashes sorted by name: sorted once when built,
// so digesting and storing them never sorts again.
type Columns []Column

// Get returns the hash of column name.
func (c Columns) Get(name string) (uint64, bool) {
	i, ok := slices.BinarySearchFunc(c, name, func(col Column, n string) int { return strings.Compare(col.Name, n) })
	if !ok {
		return 0, false
	}
	return c[i].Hash, true
}

// With returns c with column name set to hash, keeping the order; it may
// reuse c's array.
func (c Columns) With(name string, hash uint64) Columns {
	i, ok := slices.BinarySearchFunc(c, name, func(col Column, n string) int { return strings.Compare(col.Name, n) })
	if ok {
		c[i].Hash = hash
		return c
	}
	return slices.Insert(c, i, Column{name, hash})
}

// Columns returns the hash of every column of row (see ColumnHash), sorted.
func (h *Hasher) Columns(row Row) Columns {
	out := make(Columns, 0, len(row))
	for name, v := range row {
		out = append(out, Column{name, ColumnHash(v)})
	}
	slices.SortFunc(out, func(a, b Column) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Digest is the keyed digest of a row given its sorted column hashes: the
// HMAC of a format byte followed, for each column in name order, by the
// name's length as a uvarint, the name and the 8-byte big-endian hash.
// Length prefixes, not separators, so that no column name can forge a
// boundary.
func (h *Hasher) Digest(cols Columns) Digest {
	st := h.pool.Get().(*hashState)
	for _, c := range cols {
		st.cols = append(st.cols, column{c.Name, c.Hash})
	}
	st.sorted = true
	return h.finish(st)
}

// RowDigest is Digest(Columns(row)) without building the map.
func (h *Hasher) RowDigest(row Row) Digest {
	st := h.pool.Get().(*hashState)
	for name, v := range row {
		st.cols = append(st.cols, column{name, ColumnHash(v)})
	}
	return h.finish(st)
}

// finish sorts, serializes and MACs st.cols, then returns st to the pool.
func (h *Hasher) finish(st *hashState) Digest {
	if !st.sorted {
		slices.SortFunc(st.cols, func(a, b column) int { return strings.Compare(a.name, b.name) })
	}
	st.sorted = false
	b := append(st.buf[:0], digestFormat)
	for _, c := range st.cols {
		b = binary.AppendUvarint(b, uint64(len(c.name)))
		b = append(b, c.name...)
		b = binary.BigEndian.AppendUint64(b, c.hash)
	}
	st.mac.Reset()
	st.mac.Write(b)
	sum := st.mac.Sum(st.sum[:0])
	var d Digest
	copy(d[:], sum)

	clear(st.cols) // drop references to column names
	st.cols = st.cols[:0]
	if cap(b) <= maxPooledBuf {
		st.buf = b[:0]
	} else {
		st.buf = nil
	}
	h.pool.Put(st)
	return d
}
