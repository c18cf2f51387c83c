package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The audit log is an append-only chain of AuditRecords: each holds the hash
// of the one before it, and its own hash covers that link, so a record that is
// altered, removed or moved breaks the chain where it happened. Records are
// appended through a Batch, in the same transaction as the decision they
// record; Commit gives them their seqs and hashes, in append order,
// continuing the chain from its stored head.
//
// A record is stored under a | seq as
//
//	byte      codec version (1)
//	uvarint   seq
//	varint    time, unix nanoseconds (UTC; clamped to 1678..2262; 0 is the zero time)
//	string    actor, action, dataset, target, key, divergence id, repair id,
//	          rules version, config hash, detail   (string: uvarint length, bytes)
//	32 bytes  prev hash (all zeros for seq 1)
//	32 bytes  hash = SHA-256 of every byte before it
//
// The encoding is canonical: decoding accepts only minimal varints and no
// trailing bytes, so a record has exactly one encoding and the hash is a
// function of its fields. Verification re-encodes what it decoded and hashes
// that; a tool in another language needs nothing but this comment.
//
// The chain head (last seq, its hash) is kept under metaAuditHead, written in
// the same transaction as the records, so removing the newest records shows
// too. Anyone able to rewrite the whole store can rewrite the whole chain:
// the head hash, kept elsewhere (the Kafka mirror, a ticket, a log line), is
// what anchors it.
const auditCodecV1 = 1

// AuditHash is the SHA-256 of an audit record. It reads and writes as hex.
type AuditHash [sha256.Size]byte

func (h AuditHash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText renders the hash as lowercase hex.
func (h AuditHash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads a hash written by MarshalText.
func (h *AuditHash) UnmarshalText(b []byte) error {
	if len(b) != hex.EncodedLen(len(h)) {
		return fmt.Errorf("audit hash %q: want %d hex digits", b, hex.EncodedLen(len(h)))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// AuditRecord is one decision in the audit log. Seq, PrevHash and Hash are
// assigned by Commit; whatever the caller sets there is ignored.
type AuditRecord struct {
	Seq          uint64    `json:"seq"`
	Time         time.Time `json:"time"`
	Actor        string    `json:"actor"`  // "recon", or the person who approved, rejected or reverted
	Action       string    `json:"action"` // opened, resolved, repair_planned, ...: the vocabulary is the caller's
	Dataset      string    `json:"dataset,omitempty"`
	Target       string    `json:"target,omitempty"`
	Key          string    `json:"key,omitempty"` // canonical key
	DivergenceID string    `json:"divergence_id,omitempty"`
	RepairID     string    `json:"repair_id,omitempty"`
	RulesVersion string    `json:"rules_version"`
	ConfigHash   string    `json:"config_hash"` // of the dataset's effective config
	Detail       string    `json:"detail,omitempty"`
	PrevHash     AuditHash `json:"prev_hash"`
	Hash         AuditHash `json:"hash"`
}

// AuditHead is the newest record of the chain: Seq 0 and a zero Hash when the
// chain is empty.
type AuditHead struct {
	Seq  uint64    `json:"seq"`
	Hash AuditHash `json:"hash"`
}

func encodeAuditHead(h AuditHead) []byte {
	return append(binary.BigEndian.AppendUint64(nil, h.Seq), h.Hash[:]...)
}

func decodeAuditHead(b []byte) (AuditHead, error) {
	var h AuditHead
	if len(b) != 8+len(h.Hash) {
		return h, fmt.Errorf("audit head value %x: %w", b, ErrCorrupt)
	}
	h.Seq = binary.BigEndian.Uint64(b)
	copy(h.Hash[:], b[8:])
	return h, nil
}

// appendAuditContent encodes the fields between seq and prev hash: what a
// Batch holds until Commit knows the seq and the previous hash.
func appendAuditContent(dst []byte, r *AuditRecord) []byte {
	e := encoder{buf: dst}
	e.time(r.Time)
	for _, s := range []string{r.Actor, r.Action, r.Dataset, r.Target, r.Key, r.DivergenceID, r.RepairID,
		r.RulesVersion, r.ConfigHash, r.Detail} {
		e.string(s)
	}
	return e.buf
}

// appendAuditValue appends the stored value of a record whose content is
// already encoded, and returns it with the record's hash.
func appendAuditValue(dst []byte, seq uint64, content []byte, prev AuditHash) ([]byte, AuditHash) {
	start := len(dst)
	dst = append(dst, auditCodecV1)
	dst = binary.AppendUvarint(dst, seq)
	dst = append(dst, content...)
	dst = append(dst, prev[:]...)
	h := AuditHash(sha256.Sum256(dst[start:]))
	return append(dst, h[:]...), h
}

// auditHash is the hash a record's fields call for.
func auditHash(r *AuditRecord) AuditHash {
	_, h := appendAuditValue(nil, r.Seq, appendAuditContent(nil, r), r.PrevHash)
	return h
}

func decodeAuditRecord(b []byte) (AuditRecord, error) {
	d := decoder{s: string(b)}
	if v := d.byte("codec version"); d.err == nil && v != auditCodecV1 {
		d.fail(fmt.Sprintf("unknown audit codec version %d", v))
	}
	var r AuditRecord
	r.Seq = d.uvarint()
	r.Time = d.time()
	for _, f := range []*string{&r.Actor, &r.Action, &r.Dataset, &r.Target, &r.Key, &r.DivergenceID, &r.RepairID,
		&r.RulesVersion, &r.ConfigHash, &r.Detail} {
		*f = d.string()
	}
	r.PrevHash = d.hash("prev hash")
	r.Hash = d.hash("hash")
	if d.err == nil && d.off != len(d.s) {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return AuditRecord{}, fmt.Errorf("audit record: %w", d.err)
	}
	return r, nil
}

func (d *decoder) hash(what string) AuditHash {
	var h AuditHash
	if d.err != nil {
		return h
	}
	if len(d.s)-d.off < len(h) {
		d.fail("truncated " + what)
		return h
	}
	copy(h[:], d.s[d.off:])
	d.off += len(h)
	return h
}

// AppendAudit appends a record to the audit log. Commit assigns its Seq,
// PrevHash and Hash in append order, after the records of every batch
// committed before. Time, Actor and Action are required.
func (b *Batch) AppendAudit(r AuditRecord) {
	switch {
	case r.Action == "":
		b.fail(errors.New("append audit record: empty action"))
		return
	case r.Actor == "":
		b.fail(fmt.Errorf("append audit record %s: empty actor", r.Action))
		return
	case r.Time.IsZero():
		b.fail(fmt.Errorf("append audit record %s: zero time", r.Action))
		return
	}
	// A record about a key also gets a key index entry; its prefix waits in
	// the op's key until Commit knows the seq.
	k0, k1 := 0, 0
	if r.Key != "" && r.Dataset != "" && strings.IndexByte(r.Dataset, sep) < 0 {
		k0 = b.mark()
		b.enc.buf = appendKeyIdxPrefix(b.enc.buf, r.Dataset, r.Key, familyAudit)
		k1 = b.mark()
	}
	v0 := b.mark()
	b.enc.buf = appendAuditContent(b.enc.buf, &r)
	b.ops = append(b.ops, op{kind: opAudit, key0: k0, key1: k1, value0: v0, value1: b.mark()})
	b.auditN++
}

// auditCommit is the audit part of one commit: the records' keys and values,
// the head they lead to, and their mirror records for the outbox.
type auditCommit struct {
	head  AuditHead
	arena []byte // keys and values of this commit's records
}

// chain turns an audit op's content into its key and stored value, linked to
// the head so far, and advances the head.
func (c *auditCommit) chain(content []byte) (key, value []byte) {
	c.head.Seq++
	k0 := len(c.arena)
	c.arena = appendAuditKey(c.arena, c.head.Seq)
	v0 := len(c.arena)
	c.arena, c.head.Hash = appendAuditValue(c.arena, c.head.Seq, content, c.head.Hash)
	return c.arena[k0:v0:v0], c.arena[v0:]
}

// auditMirror renders a stored audit record as the JSON outbox record that
// mirrors it to the audit topic.
func auditMirror(topic string, value []byte) (OutboxRecord, error) {
	r, err := decodeAuditRecord(value)
	if err != nil {
		return OutboxRecord{}, err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return OutboxRecord{}, fmt.Errorf("render audit record %d: %w", r.Seq, err)
	}
	// One key for every record keeps the mirror in one partition, in order.
	return OutboxRecord{Topic: topic, Key: []byte("audit"), Value: body, Headers: []Header{
		{Key: "recon-dataset", Value: []byte(r.Dataset)},
		{Key: "recon-action", Value: []byte(r.Action)},
		{Key: "recon-id", Value: []byte(r.Hash.String())},
	}}, nil
}

// readAuditHead reads the stored chain head; ok is false when none is stored.
func readAuditHead(txn *badger.Txn) (h AuditHead, ok bool, err error) {
	item, err := txn.Get(metaAuditHead)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return AuditHead{}, false, nil
	}
	if err != nil {
		return AuditHead{}, false, fmt.Errorf("read audit head: %w", err)
	}
	err = item.Value(func(v []byte) (err error) { h, err = decodeAuditHead(v); return err })
	if err != nil {
		return AuditHead{}, false, fmt.Errorf("read audit head: %w", err)
	}
	return h, true, nil
}

// lastAuditSeq is the seq of the newest stored audit record, 0 if none.
func lastAuditSeq(txn *badger.Txn) (uint64, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: auditPrefix, Reverse: true})
	defer it.Close()
	it.Seek(appendAuditKey(nil, ^uint64(0)))
	if !it.Valid() {
		return 0, nil
	}
	return decodeAuditKey(it.Item().Key())
}

// loadAuditHead sets the head appends continue from. Records past the stored
// head, or records without one, are not what this code wrote: appending
// would bury them, so the store refuses to open, as for the outbox. A head
// past the records (the newest ones removed) is left for VerifyAudit to
// report; appends go on from the head, so the gap stays visible.
func (s *Store) loadAuditHead(txn *badger.Txn) error {
	head, _, err := readAuditHead(txn)
	if err != nil {
		return err
	}
	last, err := lastAuditSeq(txn)
	if err != nil {
		return err
	}
	if last > head.Seq {
		return fmt.Errorf("audit record %d is past the chain head %d (run recon audit verify): %w", last, head.Seq, ErrCorrupt)
	}
	s.auditHead = head
	return nil
}

// AuditRecords returns up to limit audit records from seq from on, in seq
// order. limit <= 0 means no limit. It does not verify the chain.
func (s *Store) AuditRecords(from uint64, limit int) ([]AuditRecord, error) {
	var out []AuditRecord
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: auditPrefix, PrefetchValues: true})
		defer it.Close()
		for it.Seek(appendAuditKey(nil, from)); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
			seq, err := decodeAuditKey(it.Item().Key())
			if err != nil {
				return err
			}
			var r AuditRecord
			if err := it.Item().Value(func(v []byte) (err error) { r, err = decodeAuditRecord(v); return err }); err != nil {
				return fmt.Errorf("seq %d: %w", seq, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit records: %w", err)
	}
	return out, nil
}

// AuditProblem names how the audit chain is broken.
type AuditProblem string

const (
	// AuditUnreadable: a stored record or key does not decode.
	AuditUnreadable AuditProblem = "unreadable"
	// AuditAltered: a record's fields do not hash to its stored hash, or the
	// newest record is not the one the chain head names.
	AuditAltered AuditProblem = "altered"
	// AuditRemoved: a seq is missing, between records or below the head.
	AuditRemoved AuditProblem = "removed"
	// AuditReordered: a record is not where the chain puts it: it is stored
	// under another seq than its own, or its prev_hash is not the hash of
	// the record before it.
	AuditReordered AuditProblem = "reordered"
	// AuditAdded: a record lies past the chain head, which no commit writes.
	AuditAdded AuditProblem = "added"
)

// AuditBreak is the first broken link of the chain.
type AuditBreak struct {
	Seq     uint64       `json:"seq"`
	Problem AuditProblem `json:"problem"`
	Detail  string       `json:"detail"`
}

func (b *AuditBreak) String() string {
	return fmt.Sprintf("seq %d %s: %s", b.Seq, b.Problem, b.Detail)
}

// AuditVerification is what VerifyAudit found. A broken chain is a result,
// not an error.
type AuditVerification struct {
	// Records is how many records verified, up to the break if any.
	Records uint64 `json:"records"`
	// Head is the chain head the store records.
	Head AuditHead `json:"head"`
	// Break is the first broken link; nil when the chain verifies.
	Break *AuditBreak `json:"break,omitempty"`
}

// OK reports whether the chain verified.
func (v AuditVerification) OK() bool { return v.Break == nil }

// VerifyAudit walks the audit chain from one consistent snapshot and returns
// its first broken link, if any: each record must decode, sit under its own
// seq right after the previous one, hash to its stored hash and link to the
// previous record's hash, and the newest record must be the chain head. The
// error is for failures to read, never for a broken chain.
func (s *Store) VerifyAudit() (AuditVerification, error) {
	var v AuditVerification
	err := s.db.View(func(txn *badger.Txn) error {
		head, _, err := readAuditHead(txn)
		if err != nil {
			return err
		}
		v.Head = head
		w := auditWalk{head: head}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: auditPrefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid() && w.brk == nil; it.Next() {
			item := it.Item()
			if err := item.Value(func(val []byte) error { w.step(item.Key(), val); return nil }); err != nil {
				return err
			}
		}
		w.end()
		v.Records, v.Break = w.seq, w.brk
		if w.brk != nil {
			v.Records = w.brk.Seq - 1
		}
		return nil
	})
	if err != nil {
		return AuditVerification{}, fmt.Errorf("verify audit log: %w", err)
	}
	return v, nil
}

// auditWalk checks records in key order. seq and hash are the last record
// that verified.
type auditWalk struct {
	head AuditHead
	seq  uint64
	hash AuditHash
	brk  *AuditBreak
}

func (w *auditWalk) fail(seq uint64, p AuditProblem, format string, args ...any) {
	w.brk = &AuditBreak{Seq: seq, Problem: p, Detail: fmt.Sprintf(format, args...)}
}

func (w *auditWalk) step(key, val []byte) {
	want := w.seq + 1
	seq, err := decodeAuditKey(key)
	switch {
	case err != nil:
		w.fail(want, AuditUnreadable, "a key after seq %d does not decode: %v", w.seq, err)
		return
	case seq > w.head.Seq && w.head.Seq == 0:
		w.fail(seq, AuditAdded, "no chain head is stored, so no commit wrote this record")
		return
	case seq > w.head.Seq:
		w.fail(seq, AuditAdded, "the record lies past the chain head, seq %d: no commit wrote it", w.head.Seq)
		return
	case seq > want:
		w.fail(want, AuditRemoved, "%s missing: the next stored record is seq %d", seqRange(want, seq-1), seq)
		return
	}
	r, err := decodeAuditRecord(val)
	switch {
	case err != nil:
		w.fail(seq, AuditUnreadable, "%v", err)
		return
	case r.Seq != seq:
		w.fail(seq, AuditReordered, "the record stored as seq %d is seq %d", seq, r.Seq)
		return
	}
	if h := auditHash(&r); h != r.Hash {
		w.fail(seq, AuditAltered, "its fields hash to %s, not to its stored hash %s", h, r.Hash)
		return
	}
	if r.PrevHash != w.hash {
		if seq == 1 {
			w.fail(seq, AuditReordered, "the first record's prev_hash is %s, not zero", r.PrevHash)
		} else {
			w.fail(seq, AuditReordered, "its prev_hash %s is not the hash %s of seq %d: records were reordered or seq %d replaced",
				r.PrevHash, w.hash, w.seq, w.seq)
		}
		return
	}
	w.seq, w.hash = seq, r.Hash
}

// end checks the last record against the head.
func (w *auditWalk) end() {
	switch {
	case w.brk != nil:
	case w.seq < w.head.Seq:
		w.fail(w.seq+1, AuditRemoved, "%s missing: the chain head is seq %d", seqRange(w.seq+1, w.head.Seq), w.head.Seq)
	case w.hash != w.head.Hash:
		w.fail(w.seq, AuditAltered, "the newest record hashes to %s, but the chain head recorded %s", w.hash, w.head.Hash)
	}
}

func seqRange(from, to uint64) string {
	if from == to {
		return fmt.Sprintf("seq %d is", from)
	}
	return fmt.Sprintf("seqs %d..%d are", from, to)
}

// DatasetConfig is what a dataset's effective config was when recon last
// started: the rules version and the config's hash.
type DatasetConfig struct {
	RulesVersion string
	Hash         string
}

const datasetConfigCodecV1 = 1

func encodeDatasetConfig(c DatasetConfig) []byte {
	e := encoder{buf: []byte{datasetConfigCodecV1}}
	e.string(c.RulesVersion)
	e.string(c.Hash)
	return e.buf
}

func decodeDatasetConfig(b []byte) (DatasetConfig, error) {
	d := decoder{s: string(b)}
	if v := d.byte("codec version"); d.err == nil && v != datasetConfigCodecV1 {
		d.fail(fmt.Sprintf("unknown dataset config codec version %d", v))
	}
	c := DatasetConfig{RulesVersion: d.string(), Hash: d.string()}
	if d.err == nil && d.off != len(d.s) {
		d.fail("trailing bytes")
	}
	return c, d.err
}

// DatasetConfigs returns the config each dataset last started with, by
// dataset, including datasets no longer configured.
func (s *Store) DatasetConfigs() (map[string]DatasetConfig, error) {
	out := map[string]DatasetConfig{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: metaDatasetConfigPrefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			name := string(bytes.TrimPrefix(it.Item().Key(), metaDatasetConfigPrefix))
			var c DatasetConfig
			if err := it.Item().Value(func(v []byte) (err error) { c, err = decodeDatasetConfig(v); return err }); err != nil {
				return fmt.Errorf("dataset %s: %w", name, err)
			}
			out[name] = c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read dataset configs: %w", err)
	}
	return out, nil
}

// PutDatasetConfig records the config a dataset runs with.
func (b *Batch) PutDatasetConfig(dataset string, c DatasetConfig) {
	if err := checkName("dataset", dataset); err != nil {
		b.fail(fmt.Errorf("put dataset config: %w", err))
		return
	}
	k0 := b.mark()
	b.enc.buf = appendDatasetConfigKey(b.enc.buf, dataset)
	v0 := b.mark()
	b.enc.buf = append(b.enc.buf, encodeDatasetConfig(c)...)
	b.ops = append(b.ops, op{kind: opSet, key0: k0, key1: v0, value0: v0, value1: b.mark()})
}

// DeleteDatasetConfig forgets the config of a dataset removed from config.
func (b *Batch) DeleteDatasetConfig(dataset string) {
	k0 := b.mark()
	b.enc.buf = appendDatasetConfigKey(b.enc.buf, dataset)
	b.ops = append(b.ops, op{kind: opDelete, key0: k0, key1: b.mark()})
}
