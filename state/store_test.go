package state

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustCommit(t testing.TB, s *Store, b *Batch) {
	t.Helper()
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
}

// checkCounters compares the in-memory counters with a full scan.
func checkCounters(t *testing.T, s *Store, wantKeys int64, wantRecords int) {
	t.Helper()
	recs, err := s.Outbox(0)
	if err != nil {
		t.Fatal(err)
	}
	var scanned int64
	for _, r := range recs {
		scanned += int64(len(appendOutboxRecord(nil, &r)))
	}
	if n, b := s.OutboxDepth(); n != wantRecords || n != len(recs) || b != scanned {
		t.Errorf("OutboxDepth = %d records, %d bytes; want %d records (scan: %d, %d bytes)", n, b, wantRecords, len(recs), scanned)
	}
	if keys, _, _ := s.Stats(); keys != wantKeys {
		t.Errorf("Stats keys = %d, want %d", keys, wantKeys)
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// TestCommitAndReopen: everything a batch holds is visible after Commit and
// still there after a reopen, with seqs and counters carried on.
func TestCommitAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)

	b := s.NewBatch()
	ks := fullKeyState()
	b.PutKeyState("orders", "k1", ks)
	b.PutKeyState("orders", "k2", typicalKeyState())
	b.PutKeyState("orders", "k1", ks) // twice in one batch: still one key
	b.PutKeyState("users", "k1", &KeyState{})
	b.MoveTimer("orders", "warehouse", "k1", time.Time{}, t0.Add(time.Minute))
	b.AppendOutbox(OutboxRecord{Seq: 999, Topic: "recon.divergences", Key: []byte("a"), Value: []byte("1")})
	b.AppendOutbox(OutboxRecord{Topic: "recon.repairs", Key: []byte("b"), Value: []byte("2"), Headers: []Header{{"recon-id", []byte("x")}}})
	b.SetOffset("pg.orders", 0, 100)
	b.SetOffset("pg.orders", 1, 7)
	b.SetOffset("wh.orders", 0, 42)
	if b.Len() != 10 {
		t.Fatalf("Len = %d, want 10", b.Len())
	}
	mustCommit(t, s, b)

	check := func(s *Store) {
		t.Helper()
		got, err := s.KeyState("orders", "k1")
		if err != nil {
			t.Fatal(err)
		}
		want := fullKeyState()
		toUTC(reflect.ValueOf(want))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("KeyState = %+v, want %+v", got, want)
		}
		if got, err := s.KeyState("orders", "absent"); got != nil || err != nil {
			t.Errorf("absent key: %v, %v; want nil, nil", got, err)
		}
		offs, err := s.Offsets()
		if err != nil {
			t.Fatal(err)
		}
		wantOffs := map[string]map[int32]int64{"pg.orders": {0: 100, 1: 7}, "wh.orders": {0: 42}}
		if !reflect.DeepEqual(offs, wantOffs) {
			t.Errorf("Offsets = %v, want %v", offs, wantOffs)
		}
		timers, err := s.DueTimers(t0.Add(time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		wantTimers := []Timer{{Deadline: t0.Add(time.Minute), Dataset: "orders", Target: "warehouse", Key: "k1"}}
		if !reflect.DeepEqual(timers, wantTimers) {
			t.Errorf("DueTimers = %v, want %v", timers, wantTimers)
		}
		recs, err := s.Outbox(0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 || recs[0].Seq != 1 || recs[1].Seq != 2 || recs[0].Topic != "recon.divergences" || string(recs[1].Headers[0].Value) != "x" {
			t.Errorf("Outbox = %+v", recs)
		}
		var keys []string
		if err := s.ScanKeyStates("orders", func(k string, _ *KeyState) error { keys = append(keys, k); return nil }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(keys, []string{"k1", "k2"}) {
			t.Errorf("ScanKeyStates(orders) keys = %v", keys)
		}
		checkCounters(t, s, 3, 2)
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	check(s)

	// Seqs continue after the reopen, even once the outbox is drained.
	if err := s.DeleteOutbox(1, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	checkCounters(t, s, 3, 0)
	b = s.NewBatch()
	b.AppendOutbox(OutboxRecord{Topic: "t", Value: []byte("3")})
	b.PutKeyState("orders", "k3", &KeyState{})
	mustCommit(t, s, b)
	recs, err := s.Outbox(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Seq != 3 {
		t.Fatalf("after reopen Outbox = %+v, want one record with seq 3", recs)
	}
	checkCounters(t, s, 4, 1)
}

// TestCommitIsAllOrNothing: a batch that fails leaves nothing behind and the
// counters untouched.
func TestCommitIsAllOrNothing(t *testing.T) {
	s := openTest(t, t.TempDir())

	// A recorded error: nothing of the batch is written.
	b := s.NewBatch()
	b.PutKeyState("orders", "k1", &KeyState{})
	b.AppendOutbox(OutboxRecord{Topic: "t"})
	b.SetOffset("bad\x00topic", 0, 1)
	if err := s.Commit(b); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("Commit = %v, want the NUL name error", err)
	}

	// Too big for one transaction: Badger's limit is about 15% of the
	// memtable, 64 MiB by default. Large values live in the value log and
	// count little, so the batch is made of large keys.
	b = s.NewBatch()
	big := strings.Repeat("x", 60<<10)
	for i := range 200 {
		b.PutKeyState("orders", fmt.Sprint("big", i, big), &KeyState{})
	}
	b.AppendOutbox(OutboxRecord{Topic: "t"})
	if err := s.Commit(b); !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("Commit = %v, want ErrTxnTooBig", err)
	}
	if ks, err := s.KeyState("orders", "big0"+big); ks != nil || err != nil {
		t.Fatalf("failed batch left a key state: %v, %v", ks, err)
	}
	checkCounters(t, s, 0, 0)

	// The store still works, and the failed batches burnt no seqs.
	b = s.NewBatch()
	b.AppendOutbox(OutboxRecord{Topic: "t"})
	mustCommit(t, s, b)
	if recs, _ := s.Outbox(0); len(recs) != 1 || recs[0].Seq != 1 {
		t.Fatalf("Outbox = %+v, want seq 1", recs)
	}
}

func TestMoveTimer(t *testing.T) {
	s := openTest(t, t.TempDir())
	due := func() []Timer {
		t.Helper()
		ts, err := s.DueTimers(t0.Add(24*time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

	b := s.NewBatch()
	b.MoveTimer("d", "t", "k", time.Time{}, at(5))
	mustCommit(t, s, b)
	b = s.NewBatch()
	b.MoveTimer("d", "t", "k", at(5), at(9))
	b.MoveTimer("d", "t", "k2", at(1), at(1).In(time.FixedZone("z", 3600))) // same instant: no-op
	b.MoveTimer("d", "t", "k3", time.Time{}, time.Time{})                   // no-op
	if b.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (a delete and a set)", b.Len())
	}
	mustCommit(t, s, b)
	if got := due(); len(got) != 1 || !got[0].Deadline.Equal(at(9)) {
		t.Fatalf("after move: %v, want one timer at +9m", got)
	}
	b = s.NewBatch()
	b.MoveTimer("d", "t", "k", at(9), time.Time{})
	mustCommit(t, s, b)
	if got := due(); len(got) != 0 {
		t.Fatalf("after delete: %v, want none", got)
	}
	if _, ok, err := s.NextDeadline(); ok || err != nil {
		t.Fatalf("NextDeadline with no timers: ok=%v err=%v", ok, err)
	}

	b = s.NewBatch()
	b.MoveTimer("d", "t", "k", time.Time{}, time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC))
	if err := s.Commit(b); err == nil {
		t.Fatal("a deadline before 1970 was accepted")
	}
}

func TestDueTimersAndNextDeadline(t *testing.T) {
	s := openTest(t, t.TempDir())
	b := s.NewBatch()
	// Inserted out of order; keys with NUL and separators in them are fine
	// as the key comes last.
	b.MoveTimer("orders", "wh", "c", time.Time{}, t0.Add(3*time.Second))
	b.MoveTimer("orders", "wh", "a\x00b", time.Time{}, t0.Add(1*time.Second))
	b.MoveTimer("orders", "cache", "b", time.Time{}, t0.Add(2*time.Second))
	b.MoveTimer("orders", "wh", "b", time.Time{}, t0.Add(2*time.Second))
	b.MoveTimer("orders", "wh", "future", time.Time{}, t0.Add(time.Hour))
	mustCommit(t, s, b)

	names := func(ts []Timer) string {
		var out []string
		for _, tm := range ts {
			out = append(out, fmt.Sprintf("%s/%s/%q@%s", tm.Dataset, tm.Target, tm.Key, tm.Deadline.Sub(t0)))
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		now   time.Time
		limit int
		want  string
		why   string
	}{
		{t0, 0, "", "nothing is due before its deadline"},
		{t0.Add(time.Second), 0, `orders/wh/"a\x00b"@1s`, "a deadline equal to now is due"},
		{t0.Add(time.Minute), 0, `orders/wh/"a\x00b"@1s orders/cache/"b"@2s orders/wh/"b"@2s orders/wh/"c"@3s`, "oldest first, ties by target then key; the future one is excluded"},
		{t0.Add(time.Minute), 2, `orders/wh/"a\x00b"@1s orders/cache/"b"@2s`, "limit keeps the oldest"},
		{t0.Add(2 * time.Hour), 0, `orders/wh/"a\x00b"@1s orders/cache/"b"@2s orders/wh/"b"@2s orders/wh/"c"@3s orders/wh/"future"@1h0m0s`, "all due"},
	} {
		got, err := s.DueTimers(c.now, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if names(got) != c.want {
			t.Errorf("DueTimers(+%s, %d) = %s\nwant %s (%s)", c.now.Sub(t0), c.limit, names(got), c.want, c.why)
		}
	}
	next, ok, err := s.NextDeadline()
	if err != nil || !ok || !next.Equal(t0.Add(time.Second)) || next.Location() != time.UTC {
		t.Fatalf("NextDeadline = %v, %v, %v; want t0+1s in UTC", next, ok, err)
	}
}

func TestLayoutVersion(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	// Simulate a state dir written by another recon.
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(keyVersion, encodeLayoutVersion(LayoutVersion+6)) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(dir, Options{Logger: testLogger(t)})
	var lv *LayoutVersionError
	if !errors.As(err, &lv) || lv.Have != LayoutVersion+6 {
		t.Fatalf("Open = %v, want a *LayoutVersionError", err)
	}
	want := fmt.Sprintf("state dir %s has layout version %d, this recon needs %d", dir, LayoutVersion+6, LayoutVersion)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}

	// A Badger dir that recon did not write is refused too.
	other := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(other).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("x"), nil) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(other, Options{}); err == nil || !strings.Contains(err.Error(), "no layout version") {
		t.Fatalf("Open(foreign dir) = %v", err)
	}
}

func TestDeleteOutbox(t *testing.T) {
	s := openTest(t, t.TempDir())
	b := s.NewBatch()
	for i := range 5 {
		b.AppendOutbox(OutboxRecord{Topic: "t", Value: bytes.Repeat([]byte{'v'}, i)})
	}
	mustCommit(t, s, b)
	// Out of order, a repeat, and seqs that never existed.
	if err := s.DeleteOutbox(3, 1, 3, 99, 0); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Outbox(0)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, r := range recs {
		seqs = append(seqs, r.Seq)
	}
	if !reflect.DeepEqual(seqs, []uint64{2, 4, 5}) {
		t.Fatalf("Outbox seqs = %v, want [2 4 5]", seqs)
	}
	if recs, _ := s.Outbox(2); len(recs) != 2 || recs[1].Seq != 4 {
		t.Fatalf("Outbox(2) = %+v", recs)
	}
	checkCounters(t, s, 0, 3)
	if err := s.DeleteOutbox(2, 4, 5); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, s, 0, 0)
}

func TestRepairs(t *testing.T) {
	s := openTest(t, t.TempDir())
	rec := func(id, state string) RepairRecord {
		return RepairRecord{ID: id, DivergenceID: "d-" + id, Dataset: "orders", Target: "wh", Key: "42",
			Kind: "missing", Action: "upsert", State: state, CreatedAt: t0.In(time.FixedZone("z", 3600)), UpdatedAt: t0,
			Event: []byte(`{"id":"` + id + `"}`)}
	}
	b := s.NewBatch()
	b.PutRepair(rec("r3", "pending"))
	b.PutRepair(rec("r1", "pending"))
	b.PutRepair(rec("r2", "published"))
	mustCommit(t, s, b)

	got, err := s.Repair("r1")
	if err != nil {
		t.Fatal(err)
	}
	want := rec("r1", "pending")
	want.CreatedAt = want.CreatedAt.UTC()
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("Repair(r1) = %+v, want %+v", got, want)
	}
	if got, err := s.Repair("nope"); got != nil || err != nil {
		t.Fatalf("Repair(nope) = %v, %v", got, err)
	}

	approved := rec("r1", "published")
	approved.UpdatedAt = t0.Add(time.Minute)
	if err := s.PutRepair(approved); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRepair(RepairRecord{}); err == nil {
		t.Fatal("a repair without id was accepted")
	}
	ids := func(state string, limit int) string {
		rs, err := s.Repairs(state, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		state string
		limit int
		want  string
	}{
		{"", 0, "r1,r2,r3"},
		{"pending", 0, "r3"},
		{"published", 0, "r1,r2"},
		{"published", 1, "r1"},
		{"rejected", 0, ""},
	} {
		if got := ids(c.state, c.limit); got != c.want {
			t.Errorf("Repairs(%q, %d) = %s, want %s", c.state, c.limit, got, c.want)
		}
	}
}

// TestConcurrentUse runs the engine, the publisher and readers together;
// -race checks the locking, and the counters must end exact.
func TestConcurrentUse(t *testing.T) {
	s := openTest(t, t.TempDir())
	const batches = 50
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() { // engine
		defer close(done)
		for i := range batches {
			b := s.NewBatch()
			for j := range 10 {
				b.PutKeyState("orders", fmt.Sprintf("k%d", (i*10+j)%200), typicalKeyState())
				b.AppendOutbox(OutboxRecord{Topic: "t", Value: []byte("v")})
			}
			b.SetOffset("src", 0, int64(i))
			if err := s.Commit(b); err != nil {
				t.Error(err)
				return
			}
		}
	})
	published := 0
	wg.Go(func() { // publisher
		for {
			recs, err := s.Outbox(7)
			if err != nil {
				t.Error(err)
				return
			}
			var seqs []uint64
			for _, r := range recs {
				seqs = append(seqs, r.Seq)
			}
			if err := s.DeleteOutbox(seqs...); err != nil {
				t.Error(err)
				return
			}
			published += len(recs)
			if len(recs) == 0 {
				select {
				case <-done:
					return
				default:
				}
			}
		}
	})
	wg.Go(func() { // readers
		for {
			select {
			case <-done:
				return
			default:
			}
			s.OutboxDepth()
			s.Stats()
			if _, err := s.KeyState("orders", "k1"); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	recs, _ := s.Outbox(0)
	if published+len(recs) != batches*10 {
		t.Fatalf("published %d + left %d, want %d", published, len(recs), batches*10)
	}
	checkCounters(t, s, 200, len(recs))
}

// TestInMemory: the experiment mode opens without a dir and ignores it.
func TestInMemory(t *testing.T) {
	s, err := Open("ignored", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.NewBatch()
	b.PutKeyState("d", "k", &KeyState{SourceChanges: 1})
	mustCommit(t, s, b)
	if ks, err := s.KeyState("d", "k"); err != nil || ks == nil || ks.SourceChanges != 1 {
		t.Fatalf("KeyState = %v, %v", ks, err)
	}
	if _, err := os.Stat("ignored"); !os.IsNotExist(err) {
		t.Fatalf("in-memory store created a dir: %v", err)
	}
}

// Timer scans start at a bound below every live timer, so the deleted timers
// Badger keeps until compaction are not walked again; a commit that sets an
// earlier timer lowers the bound, so nothing is missed.
func TestTimerScanBound(t *testing.T) {
	s := openTest(t, t.TempDir())
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	b := s.NewBatch()
	for i := 0; i < 100; i++ {
		b.MoveTimer("orders", "wh", fmt.Sprint(i), time.Time{}, base.Add(time.Duration(i)*time.Second))
	}
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	b = s.NewBatch()
	for i := 0; i < 99; i++ {
		b.MoveTimer("orders", "wh", fmt.Sprint(i), base.Add(time.Duration(i)*time.Second), time.Time{})
	}
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	next, ok, err := s.NextDeadline()
	if err != nil || !ok || !next.Equal(base.Add(99*time.Second)) {
		t.Fatalf("next deadline %v %v %v", next, ok, err)
	}
	if low, _ := s.timerBound(); low != base.Add(99*time.Second).UnixNano() {
		t.Fatalf("bound not raised to the earliest live timer")
	}
	// An earlier timer set later must still be found.
	b = s.NewBatch()
	b.MoveTimer("orders", "wh", "early", time.Time{}, base.Add(-time.Hour))
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueTimers(base, 0)
	if err != nil || len(due) != 1 || due[0].Key != "early" {
		t.Fatalf("due %+v %v", due, err)
	}
}
