package sim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// The replica's records: Debezium's MySQL connector with schemas.enable=false
// and decimal.handling.mode=string. Its table renames id to order_id, stamps
// each row with loaded_at (when the replicator wrote it, which recon is told
// to ignore) and _src_lsn (the source LSN the row was copied from: lineage).
const (
	myConnector = "2.7.0.Final"
	myPrefix    = "replica"
	myBinlog    = "mysql-bin.000001"
)

// Row is one row of the replica table: the source's data plus the
// replicator's own columns.
type Row struct {
	Order
	SrcLSN   uint64    // lineage: the source version the row was copied from
	LoadedAt time.Time // when the replicator wrote it
}

type myRow struct {
	OrderID   int64   `json:"order_id"`
	Customer  string  `json:"customer"`
	Amount    string  `json:"amount"`
	Status    string  `json:"status"`
	Quantity  int32   `json:"quantity"`
	CreatedAt string  `json:"created_at"`
	UpdatedAt string  `json:"updated_at"`
	Note      *string `json:"note"`
	LoadedAt  string  `json:"loaded_at"`
	SrcLSN    uint64  `json:"_src_lsn"`
}

type mySourceInfo struct {
	Version   string  `json:"version"`
	Connector string  `json:"connector"`
	Name      string  `json:"name"`
	TsMs      int64   `json:"ts_ms"`
	Snapshot  string  `json:"snapshot"`
	DB        string  `json:"db"`
	Sequence  *string `json:"sequence"`
	Table     string  `json:"table"`
	ServerID  int64   `json:"server_id"`
	GTID      *string `json:"gtid"`
	File      string  `json:"file"`
	Pos       uint64  `json:"pos"`
	Row       int     `json:"row"`
	Thread    int64   `json:"thread"`
	Query     *string `json:"query"`
}

type myEnvelope struct {
	Before      *myRow       `json:"before"`
	After       *myRow       `json:"after"`
	Source      mySourceInfo `json:"source"`
	Op          string       `json:"op"`
	TsMs        int64        `json:"ts_ms"`
	Transaction *struct{}    `json:"transaction"`
}

// summary shows the compared columns of a row in a trace.
func summary(o *Order, op byte) string {
	if op == 'd' {
		return "(row removed)"
	}
	note := "null"
	if o.Note != nil {
		note = strconv.Quote(*o.Note)
	}
	return fmt.Sprintf("amount=%s status=%s quantity=%d note=%s", amountText(o.Amount), o.Status, o.Quantity, note)
}

func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func toMyRow(r Row) *myRow {
	return &myRow{
		OrderID: r.ID, Customer: r.Customer, Amount: amountText(r.Amount), Status: r.Status, Quantity: r.Quantity,
		CreatedAt: isoTime(r.CreatedAt), UpdatedAt: isoTime(r.UpdatedAt), Note: r.Note,
		LoadedAt: isoTime(r.LoadedAt), SrcLSN: r.SrcLSN,
	}
}

// TargetKey is the replica's record key of id: plain JSON, renamed column.
func TargetKey(id int64) []byte { return []byte(`{"order_id":` + strconv.FormatInt(id, 10) + `}`) }

// TargetValue renders one replica change at binlog position pos. op is 'c',
// 'u', 'd' (r is the row removed) or 'r' (a snapshot read, for digests).
func TargetValue(op byte, r Row, pos uint64, at time.Time) []byte {
	env := myEnvelope{
		Source: mySourceInfo{
			Version: myConnector, Connector: "mysql", Name: myPrefix, TsMs: at.UnixMilli(), Snapshot: "false",
			DB: "shop", Table: "orders", ServerID: 223344, File: myBinlog, Pos: pos, Thread: 7,
		},
		Op:   string(op),
		TsMs: at.Add(2 * time.Millisecond).UnixMilli(),
	}
	if op == 'd' {
		env.Before = toMyRow(r)
	} else {
		env.After = toMyRow(r)
	}
	if op == 'r' {
		env.Source.Snapshot = "true"
	}
	b, _ := json.Marshal(env)
	return b
}

// record is one Kafka record the simulator produces; a nil Value is a tombstone.
type record struct {
	Topic      string
	Key, Value []byte
	acked      func(time.Time) // called when the broker has it; may be nil
}

// Replica is the simulated target database and its CDC stream. The
// simulator's main loop copies source changes into it and the repair
// consumer applies repairs to it, so it is guarded by a mutex; every change
// it makes is written to its topic in the order it made them.
type Replica struct {
	topic  string
	format targetFormat
	emit   func(record)
	trace  *trace // nil: no trace
	// onCopy, if set, learns when the broker has each copy of a source
	// change: how late the replica really was, as recon can see it.
	onCopy func(id int64, srcLSN uint64, at time.Time)

	mu     sync.Mutex
	rows   map[int64]Row
	pos    uint64
	last   map[int64]record // each key's newest change record, for redelivery noise
	writes int
	dups   int // noise: records written twice
	redelv int // noise: older records delivered again after a newer one
}

// newReplica returns an empty replica writing its changes to topic via emit,
// in format f.
func newReplica(topic string, f targetFormat, emit func(record)) *Replica {
	return &Replica{topic: topic, format: f, emit: emit, rows: make(map[int64]Row), pos: 4, last: make(map[int64]record)}
}

// Row returns the live row of id.
func (r *Replica) Row(id int64) (Row, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	row, ok := r.rows[id]
	return row, ok
}

// Writes is how many changes the replica has made (noise excluded).
func (r *Replica) Writes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}

// noiseCounts returns how many duplicate and redelivered records it wrote.
func (r *Replica) noiseCounts() (dups, redelivered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dups, r.redelv
}

// noise says which harmless extra records follow a change.
type noise struct {
	duplicate bool // the same record again, same position
	redeliver bool // the key's previous record again, after the newer one
}

// copyChange replicates one source change. corrupt is added to the amount
// written (a fault); the noise records follow the change.
func (r *Replica) copyChange(ch Change, corrupt int64, nz noise, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch.Op == 'd' {
		r.deleteLocked(ch.Row.ID, now, nz, "copy")
		return
	}
	row := Row{Order: ch.Row, SrcLSN: ch.LSN, LoadedAt: micros(now)}
	row.Amount += corrupt
	r.upsertLocked(row, now, nz, "copy")
}

func (r *Replica) upsertLocked(row Row, now time.Time, nz noise, via string) {
	op := byte('c')
	if _, ok := r.rows[row.ID]; ok {
		op = 'u'
	}
	r.rows[row.ID] = row
	r.writeLocked(op, row, now, nz, via)
}

// deleteLocked deletes id if it is live. The before image carries the row's
// own _src_lsn, as a real binlog does: a delete rewrites no column.
func (r *Replica) deleteLocked(id int64, now time.Time, nz noise, via string) bool {
	row, ok := r.rows[id]
	if !ok {
		return false
	}
	delete(r.rows, id)
	r.writeLocked('d', row, now, nz, via)
	r.emit(record{Topic: r.topic, Key: r.format.key(row.ID)}) // the tombstone
	return true
}

func (r *Replica) writeLocked(op byte, row Row, now time.Time, nz noise, via string) {
	r.trace.add(row.ID, now, "replica %c pos=%d _src_lsn=%d %s (%s)", op, r.pos, row.SrcLSN, summary(&row.Order, op), via)
	v := r.format.value(op, row, r.pos, now)
	pos := r.pos
	// The next event starts after this one, as binlog positions do.
	r.pos += uint64(len(v)) + 19
	rec := record{Topic: r.topic, Key: r.format.key(row.ID), Value: v}
	trace, onCopy := r.trace, r.onCopy
	if via != "copy" {
		onCopy = nil
	}
	rec.acked = func(at time.Time) {
		// When a record is in Kafka tells whether a verdict came too early.
		trace.add(row.ID, at, "kafka has replica pos=%d", pos)
		if onCopy != nil {
			onCopy(row.ID, row.SrcLSN, at)
		}
	}
	prev, hadPrev := r.last[row.ID]
	r.last[row.ID] = rec
	r.writes++
	r.emit(rec)
	if nz.duplicate {
		r.dups++
		dup := rec
		dup.acked = nil
		r.emit(dup)
	}
	if nz.redeliver && hadPrev {
		r.redelv++
		prev.acked = nil
		r.emit(prev)
	}
}

// repairOutcome is what applying one repair did.
type repairOutcome int

const (
	repairApplied repairOutcome = iota
	repairSkipped               // the precondition failed: the row changed since recon saw it
)

// applyRepair applies a published repair if the replica still holds the row
// recon saw (previous_digest; "" when it had no live row). digest computes the
// digest text of a live row the way recon does. An upsert writes after as a
// new change whose lineage is the repair's source version.
func (r *Replica) applyRepair(rep repairEvent, digest func(Row) (string, error), now time.Time) (repairOutcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, err := rep.id()
	if err != nil {
		return 0, err
	}
	cur := ""
	if row, ok := r.rows[id]; ok {
		if cur, err = digest(row); err != nil {
			return 0, err
		}
	}
	if cur != rep.PreviousDigest {
		r.trace.add(id, now, "repair %s %s skipped: the replica no longer holds previous_digest %q", rep.Kind, rep.Action, rep.PreviousDigest)
		return repairSkipped, nil
	}
	switch rep.Action {
	case "delete":
		r.deleteLocked(id, now, noise{}, "repair "+rep.Kind)
		return repairApplied, nil
	case "upsert":
		row, err := rep.row(now)
		if err != nil {
			return 0, err
		}
		r.upsertLocked(row, now, noise{}, "repair "+rep.Kind)
		return repairApplied, nil
	}
	return 0, fmt.Errorf("repair %s: unknown action %q", rep.ID, rep.Action)
}
