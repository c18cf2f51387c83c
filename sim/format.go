package sim

import (
	"encoding/json"
	"time"
)

// Formats of a run (Options.Format). Each names how the source writes its
// changes; the replica and recon's outputs follow:
//
//	json: schema-wrapped Debezium JSON source, plain Debezium JSON replica
//	      (the MySQL connector with schemas.enable=false), JSON outputs.
//	avro: Debezium Avro source (Confluent AvroConverter, schemas in the
//	      registry the embedded broker serves), a flat JSON replica (the
//	      unwrap SMT with add.fields), Avro outputs. Every column of a row
//	      is spelled differently on the two sides, and still compares equal.
const (
	FormatJSON = "json"
	FormatAvro = "avro"
)

// formatPair is how a run renders its two systems' records.
type formatPair struct {
	src sourceFormat
	tgt targetFormat
}

// jsonFormats are the formats of a json run.
var jsonFormats = formatPair{src: jsonSource{}, tgt: debeziumTarget{}}

// sourceFormat renders the source table's changes as Kafka records.
type sourceFormat interface {
	key(id int64) ([]byte, error)
	// value renders a change; op 'r' renders a snapshot read of the row,
	// which the simulator uses to digest a live row.
	value(ch Change) ([]byte, error)
}

// targetFormat renders the replica's changes as records of its CDC stream.
// Its records are JSON made from the simulator's own types: they cannot fail.
type targetFormat interface {
	key(id int64) []byte
	// value renders one change at binlog position pos: op 'c', 'u', 'd' (r
	// is the row removed) or 'r' (a snapshot read, for digests).
	value(op byte, r Row, pos uint64, at time.Time) []byte
}

// jsonSource is the source in schema-wrapped Debezium JSON.
type jsonSource struct{}

func (jsonSource) key(id int64) ([]byte, error)    { return SourceKey(id), nil }
func (jsonSource) value(ch Change) ([]byte, error) { return SourceValue(ch), nil }

// debeziumTarget is the replica in plain Debezium JSON: TargetKey and
// TargetValue.
type debeziumTarget struct{}

func (debeziumTarget) key(id int64) []byte { return TargetKey(id) }
func (debeziumTarget) value(op byte, r Row, pos uint64, at time.Time) []byte {
	return TargetValue(op, r, pos, at)
}

// flatTarget is the replica through Debezium's ExtractNewRecordState SMT
// (add.fields=op,source.file,source.pos,source.row,source.ts_ms,
// delete.tombstone.handling.mode=rewrite-with-tombstone): the row itself
// with "__" metadata. Keys stay the Debezium key struct.
type flatTarget struct{}

func (flatTarget) key(id int64) []byte { return TargetKey(id) }
func (flatTarget) value(op byte, r Row, pos uint64, at time.Time) []byte {
	return FlatTargetValue(op, r, pos, at)
}

// flatRow is a replica row as the unwrap SMT writes it. Its timestamps are
// DATETIME(6) text, as a JDBC-fed replica often has them, where the plain
// Debezium replica writes ISO-8601: recon's compare.types make both equal
// to the source's epoch microseconds.
type flatRow struct {
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

	Op         string `json:"__op"`
	SourceFile string `json:"__source_file"`
	SourcePos  uint64 `json:"__source_pos"`
	SourceRow  int    `json:"__source_row"`
	SourceTsMs int64  `json:"__source_ts_ms"`
	Deleted    string `json:"__deleted"`
}

// datetime renders t as MySQL DATETIME(6) text, without a zone.
func datetime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000000") }

// FlatTargetValue renders one replica change at binlog position pos as the
// unwrap SMT does; a delete is the removed row with __deleted "true" (the
// tombstone that follows it is written separately).
func FlatTargetValue(op byte, r Row, pos uint64, at time.Time) []byte {
	deleted := "false"
	if op == 'd' {
		deleted = "true"
	}
	b, _ := json.Marshal(flatRow{ // plain types: cannot fail
		OrderID: r.ID, Customer: r.Customer, Amount: amountText(r.Amount), Status: r.Status, Quantity: r.Quantity,
		CreatedAt: datetime(r.CreatedAt), UpdatedAt: datetime(r.UpdatedAt), Note: r.Note,
		LoadedAt: datetime(r.LoadedAt), SrcLSN: r.SrcLSN,
		Op: string(op), SourceFile: myBinlog, SourcePos: pos, SourceTsMs: at.UnixMilli(), Deleted: deleted,
	})
	return b
}
