package sim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"time"
)

// Order is one row of the simulated orders table, in the source's terms.
type Order struct {
	ID        int64
	Customer  string
	Amount    int64 // cents: numeric(10,2)
	Status    string
	Quantity  int32
	CreatedAt time.Time // microsecond precision, as Postgres keeps it
	UpdatedAt time.Time
	Note      *string // nullable
}

// Change is one committed change of the source table.
type Change struct {
	Op      byte   // 'c', 'u' or 'd'
	LSN     uint64 // strictly increasing across the table
	PrevLSN uint64 // the previous change's LSN (Debezium's source.sequence)
	TxID    int64
	At      time.Time
	Row     Order // the row after the change; for a delete, the row it removed
}

// Source is the simulated Postgres table. It is not safe for concurrent use:
// the simulator's main loop owns it.
type Source struct {
	rows map[int64]Order
	lsn  uint64
	txID int64
}

// NewSource returns an empty table whose first change gets an LSN in the
// range a real server would show.
func NewSource() *Source {
	return &Source{rows: make(map[int64]Order), lsn: 0x16B3_7A00, txID: 771}
}

// Row returns the live row of id.
func (s *Source) Row(id int64) (Order, bool) {
	o, ok := s.rows[id]
	return o, ok
}

// Apply commits a change: the row for 'c' and 'u', the key for 'd'. lsnStep
// is how far the WAL moved since the previous change (at least 1), so that
// LSNs look like byte positions rather than a counter.
func (s *Source) Apply(op byte, row Order, at time.Time, lsnStep uint64) Change {
	prev := s.lsn
	s.lsn += max(lsnStep, 1)
	s.txID++
	switch op {
	case 'd':
		row = s.rows[row.ID]
		delete(s.rows, row.ID)
	default:
		s.rows[row.ID] = row
	}
	return Change{Op: op, LSN: s.lsn, PrevLSN: prev, TxID: s.txID, At: at, Row: row}
}

// micros truncates t to the microsecond, the precision both databases keep.
func micros(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()).UTC() }

// amountText renders cents as the decimal(10,2) text "12.50".
func amountText(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// parseAmount reads "12.50" (or "12.5", "12") back into cents.
func parseAmount(s string) (int64, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("amount %q is not a decimal", s)
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() || !r.Num().IsInt64() {
		return 0, fmt.Errorf("amount %q does not fit numeric(10,2)", s)
	}
	return r.Num().Int64(), nil
}

// decimalBytes is Kafka Connect's Decimal encoding of cents at scale 2: the
// unscaled value as big-endian two's complement in the fewest bytes, base64.
func decimalBytes(cents int64) string {
	n := big.NewInt(cents)
	var b []byte
	if n.Sign() >= 0 {
		b = n.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
	} else {
		l := (n.BitLen() + 8) / 8
		m := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), uint(8*l)), n)
		b = m.FillBytes(make([]byte, l))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// The source's records: Debezium's Postgres connector with JsonConverter and
// schemas.enable=true, so both key and value carry their Connect schema.
const (
	pgConnector = "2.7.0.Final"
	pgPrefix    = "pg"
)

type pgRow struct {
	ID        int64   `json:"id"`
	Customer  string  `json:"customer"`
	Amount    string  `json:"amount"` // Decimal: base64 of the unscaled value
	Status    string  `json:"status"`
	Quantity  int32   `json:"quantity"`
	CreatedAt int64   `json:"created_at"` // MicroTimestamp
	UpdatedAt int64   `json:"updated_at"` // MicroTimestamp
	Note      *string `json:"note"`
}

type pgSourceInfo struct {
	Version   string  `json:"version"`
	Connector string  `json:"connector"`
	Name      string  `json:"name"`
	TsMs      int64   `json:"ts_ms"`
	Snapshot  string  `json:"snapshot"`
	DB        string  `json:"db"`
	Sequence  string  `json:"sequence"`
	TsUs      int64   `json:"ts_us"`
	TsNs      int64   `json:"ts_ns"`
	Schema    string  `json:"schema"`
	Table     string  `json:"table"`
	TxID      int64   `json:"txId"`
	LSN       uint64  `json:"lsn"`
	Xmin      *uint64 `json:"xmin"`
}

type pgEnvelope struct {
	Before      *pgRow       `json:"before"`
	After       *pgRow       `json:"after"`
	Source      pgSourceInfo `json:"source"`
	Op          string       `json:"op"`
	TsMs        int64        `json:"ts_ms"`
	TsUs        int64        `json:"ts_us"`
	TsNs        int64        `json:"ts_ns"`
	Transaction *struct{}    `json:"transaction"`
}

type wrapped struct {
	Schema  json.RawMessage `json:"schema"`
	Payload any             `json:"payload"`
}

func toPGRow(o Order) *pgRow {
	return &pgRow{
		ID: o.ID, Customer: o.Customer, Amount: decimalBytes(o.Amount), Status: o.Status, Quantity: o.Quantity,
		CreatedAt: o.CreatedAt.UnixMicro(), UpdatedAt: o.UpdatedAt.UnixMicro(), Note: o.Note,
	}
}

// SourceKey is the record key of id: the schema-wrapped key struct.
func SourceKey(id int64) []byte {
	b, _ := json.Marshal(wrapped{Schema: pgKeySchema, Payload: map[string]int64{"id": id}})
	return b
}

// SourceValue renders a change as its Debezium value. Op 'r' renders a
// snapshot read of the row, which the simulator uses to digest a live row.
func SourceValue(ch Change) []byte {
	env := pgEnvelope{
		Source: pgSourceInfo{
			Version: pgConnector, Connector: "postgresql", Name: pgPrefix,
			TsMs: ch.At.UnixMilli(), TsUs: ch.At.UnixMicro(), TsNs: ch.At.UnixNano(),
			Snapshot: "false", DB: "shop", Schema: "public", Table: "orders",
			Sequence: `["` + strconv.FormatUint(ch.PrevLSN, 10) + `","` + strconv.FormatUint(ch.LSN, 10) + `"]`,
			TxID:     ch.TxID, LSN: ch.LSN,
		},
		Op: string(ch.Op),
	}
	// The connector processes the change a little after the commit.
	processed := ch.At.Add(3 * time.Millisecond)
	env.TsMs, env.TsUs, env.TsNs = processed.UnixMilli(), processed.UnixMicro(), processed.UnixNano()
	switch ch.Op {
	case 'd':
		env.Before = toPGRow(ch.Row) // REPLICA IDENTITY FULL
	case 'r':
		env.After = toPGRow(ch.Row)
		env.Source.Snapshot = "true"
	default:
		env.After = toPGRow(ch.Row)
	}
	b, _ := json.Marshal(wrapped{Schema: pgValueSchema, Payload: env})
	return b
}

// Connect schemas of the source's key and value, built once: JsonConverter
// repeats the same schema text in every record.
var (
	pgKeySchema   = mustJSON(cschema{Type: "struct", Name: "pg.public.orders.Key", Fields: []cschema{{Type: "int64", Field: "id"}}})
	pgValueSchema = mustJSON(pgEnvelopeSchema())
)

// cschema is a Kafka Connect schema as JsonConverter writes it.
type cschema struct {
	Type       string            `json:"type"`
	Optional   bool              `json:"optional"`
	Name       string            `json:"name,omitempty"`
	Version    int               `json:"version,omitempty"`
	Parameters map[string]string `json:"parameters,omitempty"`
	Field      string            `json:"field,omitempty"`
	Fields     []cschema         `json:"fields,omitempty"`
}

func pgEnvelopeSchema() cschema {
	row := func(field string) cschema {
		return cschema{Type: "struct", Optional: true, Name: "pg.public.orders.Value", Field: field, Fields: []cschema{
			{Type: "int64", Field: "id"},
			{Type: "string", Optional: true, Field: "customer"},
			{Type: "bytes", Optional: true, Name: "org.apache.kafka.connect.data.Decimal", Version: 1,
				Parameters: map[string]string{"scale": "2", "connect.decimal.precision": "10"}, Field: "amount"},
			{Type: "string", Optional: true, Field: "status"},
			{Type: "int32", Optional: true, Field: "quantity"},
			{Type: "int64", Optional: true, Name: "io.debezium.time.MicroTimestamp", Version: 1, Field: "created_at"},
			{Type: "int64", Optional: true, Name: "io.debezium.time.MicroTimestamp", Version: 1, Field: "updated_at"},
			{Type: "string", Optional: true, Field: "note"},
		}}
	}
	source := cschema{Type: "struct", Name: "io.debezium.connector.postgresql.Source", Field: "source", Fields: []cschema{
		{Type: "string", Field: "version"},
		{Type: "string", Field: "connector"},
		{Type: "string", Field: "name"},
		{Type: "int64", Field: "ts_ms"},
		{Type: "string", Optional: true, Name: "io.debezium.data.Enum", Version: 1,
			Parameters: map[string]string{"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"}, Field: "snapshot"},
		{Type: "string", Field: "db"},
		{Type: "string", Optional: true, Field: "sequence"},
		{Type: "int64", Optional: true, Field: "ts_us"},
		{Type: "int64", Optional: true, Field: "ts_ns"},
		{Type: "string", Field: "schema"},
		{Type: "string", Field: "table"},
		{Type: "int64", Optional: true, Field: "txId"},
		{Type: "int64", Optional: true, Field: "lsn"},
		{Type: "int64", Optional: true, Field: "xmin"},
	}}
	tx := cschema{Type: "struct", Optional: true, Name: "event.block", Version: 1, Field: "transaction", Fields: []cschema{
		{Type: "string", Field: "id"},
		{Type: "int64", Field: "total_order"},
		{Type: "int64", Field: "data_collection_order"},
	}}
	return cschema{Type: "struct", Name: "pg.public.orders.Envelope", Version: 2, Fields: []cschema{
		row("before"), row("after"), source,
		{Type: "string", Field: "op"},
		{Type: "int64", Optional: true, Field: "ts_ms"},
		{Type: "int64", Optional: true, Field: "ts_us"},
		{Type: "int64", Optional: true, Field: "ts_ns"},
		tx,
	}}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own constant values are rendered here
	}
	return b
}
