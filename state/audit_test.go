package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func auditRec(action string, i int) AuditRecord {
	return AuditRecord{
		Time: t0.Add(time.Duration(i) * time.Second), Actor: "recon", Action: action,
		Dataset: "orders", Target: "wh", Key: fmt.Sprint(i), DivergenceID: fmt.Sprintf("div-%d", i),
		RulesVersion: "1", ConfigHash: "c0ffee", Detail: fmt.Sprintf("record %d", i),
	}
}

// appendAudits commits n audit records, one batch per record when split.
func appendAudits(t *testing.T, s *Store, from, n int) {
	t.Helper()
	b := s.NewBatch()
	for i := from; i < from+n; i++ {
		b.AppendAudit(auditRec("opened", i))
	}
	mustCommit(t, s, b)
}

func verifyOK(t *testing.T, s *Store, records uint64) AuditVerification {
	t.Helper()
	v, err := s.VerifyAudit()
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || v.Records != records || v.Head.Seq != records {
		t.Fatalf("VerifyAudit = %+v (break %v), want %d intact records", v, v.Break, records)
	}
	return v
}

// Records get seqs from 1 in append order, across batches; each links to the
// hash of the one before and hashes to its own stored hash; the chain
// verifies and its head is the newest record.
func TestAuditAppendAndVerify(t *testing.T) {
	s := openTest(t, t.TempDir())
	verifyOK(t, s, 0)
	appendAudits(t, s, 1, 3)
	b := s.NewBatch()
	b.PutKeyState("orders", "k", &KeyState{})
	b.AppendAudit(AuditRecord{Seq: 99, Hash: AuditHash{1}, Time: t0, Actor: "alice", Action: "approved", RepairID: "r1"})
	b.AppendOutbox(OutboxRecord{Topic: "t"})
	mustCommit(t, s, b)

	recs, err := s.AuditRecords(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	var prev AuditHash
	for i, r := range recs {
		if r.Seq != uint64(i+1) || r.PrevHash != prev || r.Hash != auditHash(&r) || r.Time.Location() != time.UTC {
			t.Fatalf("record %d: %+v", i, r)
		}
		prev = r.Hash
	}
	if want := auditRec("opened", 2); recs[1].Detail != want.Detail || !recs[1].Time.Equal(want.Time) || recs[1].Key != "2" {
		t.Fatalf("record 2 = %+v", recs[1])
	}
	if recs[3].Actor != "alice" || recs[3].RepairID != "r1" {
		t.Fatalf("record 4 = %+v", recs[3])
	}
	v := verifyOK(t, s, 4)
	if v.Head.Hash != recs[3].Hash {
		t.Fatalf("head %v, want the newest record's hash", v.Head)
	}
	if page, _ := s.AuditRecords(2, 2); len(page) != 2 || page[0].Seq != 2 || page[1].Seq != 3 {
		t.Fatalf("AuditRecords(2, 2) = %+v", page)
	}
	// The outbox seqs are their own.
	if out, _ := s.Outbox(0); len(out) != 1 || out[0].Seq != 1 {
		t.Fatalf("outbox %+v", out)
	}
}

// The canonical encoding is pinned: a record's hash changes only when the
// format's version does. (Change this value only with auditCodecV1.) The
// value was computed apart, in Python, from the format comment in audit.go.
func TestAuditHashIsPinned(t *testing.T) {
	r := auditRec("opened", 1)
	r.Seq = 1
	r.PrevHash = AuditHash{0xab}
	const want = "7fc5dc237866086e20f750e101234a8ceaec7b11fca4f14bd6787286bc740923"
	if got := auditHash(&r).String(); got != want {
		t.Errorf("hash %s, want %s: the canonical encoding changed", got, want)
	}
	// Every field is covered.
	for i, mut := range []func(*AuditRecord){
		func(r *AuditRecord) { r.Seq++ },
		func(r *AuditRecord) { r.Time = r.Time.Add(time.Nanosecond) },
		func(r *AuditRecord) { r.Actor += "x" },
		func(r *AuditRecord) { r.Action += "x" },
		func(r *AuditRecord) { r.Dataset += "x" },
		func(r *AuditRecord) { r.Target += "x" },
		func(r *AuditRecord) { r.Key += "x" },
		func(r *AuditRecord) { r.DivergenceID += "x" },
		func(r *AuditRecord) { r.RepairID += "x" },
		func(r *AuditRecord) { r.RulesVersion += "x" },
		func(r *AuditRecord) { r.ConfigHash += "x" },
		func(r *AuditRecord) { r.Detail += "x" },
		func(r *AuditRecord) { r.PrevHash[31] ^= 1 },
		// Moving a byte from one string to the next is a different record.
		func(r *AuditRecord) { r.Target, r.Key = r.Target+r.Key[:1], r.Key[1:] },
	} {
		c := r
		mut(&c)
		if auditHash(&c) == auditHash(&r) {
			t.Errorf("mutation %d leaves the hash unchanged", i)
		}
	}
	// A stored value decodes to the record it was made from.
	v, h := appendAuditValue(nil, r.Seq, appendAuditContent(nil, &r), r.PrevHash)
	got, err := decodeAuditRecord(v)
	r.Hash = h
	if err != nil || got != r {
		t.Fatalf("decode = %+v, %v; want %+v", got, err, r)
	}
	for n := range len(v) {
		if _, err := decodeAuditRecord(v[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a %d-byte prefix decoded: %v", n, err)
		}
	}
}

// After a restart, appends continue the chain: seqs go on and the first new
// record links to the last old one.
func TestAuditChainContinuesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	appendAudits(t, s, 1, 2)
	s.Close()
	s = openTest(t, dir)
	appendAudits(t, s, 3, 2)
	recs, err := s.AuditRecords(0, 0)
	if err != nil || len(recs) != 4 || recs[2].Seq != 3 || recs[2].PrevHash != recs[1].Hash {
		t.Fatalf("records %+v, %v", recs, err)
	}
	verifyOK(t, s, 4)
}

// A batch that fails leaves no hole in the chain: the next one takes its
// seqs and links to the last durable record.
func TestAuditFailedCommitLeavesNoGap(t *testing.T) {
	s := openTest(t, t.TempDir())
	appendAudits(t, s, 1, 1)

	b := s.NewBatch()
	b.AppendAudit(auditRec("opened", 2))
	big := strings.Repeat("x", 60<<10)
	for i := range 200 {
		b.PutKeyState("orders", fmt.Sprint("big", i, big), &KeyState{})
	}
	if err := s.Commit(b); !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("Commit = %v, want ErrTxnTooBig", err)
	}
	b = s.NewBatch()
	b.AppendAudit(AuditRecord{Action: "opened", Actor: "recon"})
	if err := s.Commit(b); err == nil || !strings.Contains(err.Error(), "zero time") {
		t.Fatalf("Commit = %v, want the zero time refused", err)
	}
	appendAudits(t, s, 3, 1)
	verifyOK(t, s, 2)
}

// Commits from several writers at once (the engine, approvals) still make
// one chain with no gaps.
func TestAuditConcurrentCommits(t *testing.T) {
	s := openTest(t, t.TempDir())
	const writers, each = 4, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				b := s.NewBatch()
				b.AppendAudit(auditRec("opened", w*each+i))
				if i%2 == 0 {
					b.PutKeyState("orders", fmt.Sprint(w), &KeyState{})
					errc := make(chan error, 1)
					s.CommitAsync(b, func(err error) { errc <- err })
					if err := <-errc; err != nil {
						t.Error(err)
					}
					continue
				}
				if err := s.Commit(b); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	verifyOK(t, s, writers*each)
}

// With an audit topic, each audit record is also an outbox record: its JSON,
// seq and hash included, in append order among the batch's other records.
func TestAuditMirror(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Logger: testLogger(t), AuditTopic: "recon.audit"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.NewBatch()
	b.AppendOutbox(OutboxRecord{Topic: "div", Value: []byte("d")})
	b.AppendAudit(auditRec("opened", 1))
	b.AppendAudit(auditRec("repair_planned", 2))
	mustCommit(t, s, b)

	out, err := s.Outbox(0)
	if err != nil || len(out) != 3 || out[0].Topic != "div" {
		t.Fatalf("outbox %+v, %v", out, err)
	}
	stored, _ := s.AuditRecords(0, 0)
	for i, o := range out[1:] {
		var got AuditRecord
		if err := json.Unmarshal(o.Value, &got); err != nil {
			t.Fatal(err)
		}
		if o.Topic != "recon.audit" || string(o.Key) != "audit" || got != stored[i] {
			t.Errorf("mirror %d: %s %s %+v, want %+v", i, o.Topic, o.Key, got, stored[i])
		}
		if h := o.Headers; len(h) != 3 || string(h[1].Value) != stored[i].Action || string(h[2].Value) != stored[i].Hash.String() {
			t.Errorf("mirror %d headers %+v", i, h)
		}
	}
	var raw map[string]any
	json.Unmarshal(out[2].Value, &raw)
	if raw["seq"] != float64(2) || raw["action"] != "repair_planned" || raw["prev_hash"] != stored[0].Hash.String() || raw["config_hash"] != "c0ffee" {
		t.Errorf("mirror JSON %v", raw)
	}
	checkCounters(t, s, 0, 3)
}

// tamper edits a closed store's Badger directly.
func tamper(t *testing.T, dir string, f func(txn *badger.Txn) error) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(f); err != nil {
		t.Fatal(err)
	}
}

func getRaw(txn *badger.Txn, key []byte) []byte {
	item, err := txn.Get(key)
	if err != nil {
		panic(err)
	}
	v, _ := item.ValueCopy(nil)
	return v
}

// rewrite replaces record seq by what edit makes of it, rehashed when
// rehash is set (a forger who knows the format).
func rewrite(seq uint64, rehash bool, edit func(*AuditRecord)) func(*badger.Txn) error {
	return func(txn *badger.Txn) error {
		r, err := decodeAuditRecord(getRaw(txn, appendAuditKey(nil, seq)))
		if err != nil {
			return err
		}
		edit(&r)
		v, h := appendAuditValue(nil, r.Seq, appendAuditContent(nil, &r), r.PrevHash)
		if !rehash {
			v = append(v[:len(v)-len(h)], r.Hash[:]...)
		}
		return txn.Set(appendAuditKey(nil, seq), v)
	}
}

// VerifyAudit names the first broken link, whatever was done to the closed
// store's records: altered, removed, reordered, added or garbled.
func TestVerifyAuditFindsTampering(t *testing.T) {
	const n = 6
	for _, c := range []struct {
		name    string
		tamper  func(*badger.Txn) error
		seq     uint64
		problem AuditProblem
		detail  string
	}{
		{"field altered", rewrite(3, false, func(r *AuditRecord) { r.Actor = "mallory" }), 3, AuditAltered, "hash to"},
		{"time altered", rewrite(5, false, func(r *AuditRecord) { r.Time = r.Time.Add(-time.Hour) }), 5, AuditAltered, "stored hash"},
		{"altered and rehashed", rewrite(3, true, func(r *AuditRecord) { r.Detail = "nothing to see" }), 4, AuditReordered, "seq 3 replaced"},
		{"newest altered and rehashed", rewrite(n, true, func(r *AuditRecord) { r.Actor = "mallory" }), n, AuditAltered, "chain head recorded"},
		{"middle removed", func(txn *badger.Txn) error { return txn.Delete(appendAuditKey(nil, 4)) }, 4, AuditRemoved, "seq 4 is missing"},
		{"two removed", func(txn *badger.Txn) error {
			txn.Delete(appendAuditKey(nil, 2))
			return txn.Delete(appendAuditKey(nil, 3))
		}, 2, AuditRemoved, "seqs 2..3 are missing"},
		{"first removed", func(txn *badger.Txn) error { return txn.Delete(appendAuditKey(nil, 1)) }, 1, AuditRemoved, "next stored record is seq 2"},
		{"newest removed", func(txn *badger.Txn) error { return txn.Delete(appendAuditKey(nil, n)) }, n, AuditRemoved, "chain head is seq 6"},
		{"two swapped", func(txn *badger.Txn) error {
			a, b := getRaw(txn, appendAuditKey(nil, 2)), getRaw(txn, appendAuditKey(nil, 3))
			txn.Set(appendAuditKey(nil, 2), b)
			return txn.Set(appendAuditKey(nil, 3), a)
		}, 2, AuditReordered, "stored as seq 2 is seq 3"},
		{"two swapped and renumbered", func(txn *badger.Txn) error {
			if err := rewrite(2, true, func(r *AuditRecord) { *r = auditRec("opened", 3); r.Seq = 2 })(txn); err != nil {
				return err
			}
			return rewrite(3, true, func(r *AuditRecord) { *r = auditRec("opened", 2); r.Seq = 3 })(txn)
		}, 2, AuditReordered, "prev_hash"},
		{"one added past the head", func(txn *badger.Txn) error {
			v, _ := appendAuditValue(nil, n+1, appendAuditContent(nil, &AuditRecord{Action: "x"}), AuditHash{})
			return txn.Set(appendAuditKey(nil, n+1), v)
		}, n + 1, AuditAdded, "past the chain head, seq 6"},
		{"head removed", func(txn *badger.Txn) error { return txn.Delete(metaAuditHead) }, 1, AuditAdded, "no chain head"},
		{"garbled", func(txn *badger.Txn) error { return txn.Set(appendAuditKey(nil, 2), []byte{1, 2}) }, 2, AuditUnreadable, "truncated"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir)
			for i := 1; i <= n; i++ {
				appendAudits(t, s, i, 1)
			}
			s.Close()
			tamper(t, dir, c.tamper)
			ro, err := Open(dir, Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			v, err := ro.VerifyAudit()
			if err != nil {
				t.Fatal(err)
			}
			if v.OK() || v.Break.Seq != c.seq || v.Break.Problem != c.problem || !strings.Contains(v.Break.Detail, c.detail) {
				t.Fatalf("VerifyAudit = %+v, break %v; want seq %d %s mentioning %q", v, v.Break, c.seq, c.problem, c.detail)
			}
			if v.Records != min(c.seq-1, n) {
				t.Errorf("records %d verified before the break at %d", v.Records, c.seq)
			}
		})
	}
}

// A read-only store reads a closed state dir without writing to it, and is
// refused where there is no state dir, or while recon holds it.
func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	appendAudits(t, s, 1, 2)
	if _, err := Open(dir, Options{ReadOnly: true}); err == nil {
		t.Fatal("a read-only open succeeded while the store is open for writing")
	}
	s.Close()

	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	verifyOK(t, ro, 2)
	b := ro.NewBatch()
	b.AppendAudit(auditRec("opened", 3))
	if err := ro.Commit(b); err == nil {
		t.Fatal("a read-only store committed")
	}
	ro.Close()

	if _, err := Open(t.TempDir(), Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not a recon state dir") {
		t.Fatalf("read-only open of an empty dir: %v", err)
	}
}

// Records past the chain head are not what recon wrote: appending after
// them would bury them, so the store does not open for writing.
func TestOpenRefusesAuditPastHead(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	appendAudits(t, s, 1, 2)
	s.Close()
	tamper(t, dir, func(txn *badger.Txn) error { return txn.Delete(metaAuditHead) })
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "audit verify") {
		t.Fatalf("Open = %v, want ErrCorrupt pointing at audit verify", err)
	}
}

func TestDatasetConfigs(t *testing.T) {
	s := openTest(t, t.TempDir())
	b := s.NewBatch()
	b.PutDatasetConfig("orders", DatasetConfig{RulesVersion: "1", Hash: "aa"})
	b.PutDatasetConfig("users", DatasetConfig{RulesVersion: "2", Hash: "bb"})
	mustCommit(t, s, b)
	b = s.NewBatch()
	b.DeleteDatasetConfig("users")
	b.PutDatasetConfig("orders", DatasetConfig{RulesVersion: "1", Hash: "cc"})
	mustCommit(t, s, b)
	got, err := s.DatasetConfigs()
	if err != nil || len(got) != 1 || got["orders"] != (DatasetConfig{RulesVersion: "1", Hash: "cc"}) {
		t.Fatalf("DatasetConfigs = %v, %v", got, err)
	}
}
