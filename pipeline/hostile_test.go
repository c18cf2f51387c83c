package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/recon-dev/recon/broker"
	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/consumer"
	"github.com/recon-dev/recon/schemas"
)

const (
	hostileSrc = "hostile.src"
	hostileTgt = "hostile.tgt"
	// The second dataset: a debezium-avro source against flat JSON.
	hostileAvSrc = "hostile.avsrc"
	hostileAvTgt = "hostile.avtgt"
)

// hostileCommitTime is the source.ts_ms of every change the test writes.
var hostileCommitTime = time.UnixMilli(1718454600123)

// hostileAvroSchema is the avro source's envelope as AvroConverter writes it.
const hostileAvroSchema = `{"type":"record","name":"Envelope","namespace":"hostile","fields":[` +
	`{"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"id","type":"long"},` +
	`{"name":"status","type":["null","string"],"default":null},{"name":"note","type":["null","string"],"default":null}]}],"default":null},` +
	`{"name":"after","type":["null","Value"],"default":null},` +
	`{"name":"source","type":{"type":"record","name":"Source","fields":[{"name":"connector","type":"string"},` +
	`{"name":"ts_ms","type":"long"},{"name":"lsn","type":["null","long"],"default":null}]}},` +
	`{"name":"op","type":"string"},{"name":"ts_ms","type":["null","long"],"default":null}]}`

// hostileSize is how many bad records TestHostileInput feeds: 100,000, or
// 10,000 with -short; RECON_HOSTILE_RECORDS sets any other size.
func hostileSize(t *testing.T) int {
	if s := os.Getenv("RECON_HOSTILE_RECORDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 {
			t.Fatalf("RECON_HOSTILE_RECORDS=%q: want a number of at least 100", s)
		}
		return n
	}
	if testing.Short() {
		return 10_000
	}
	return 100_000
}

// tp names one input record by where it was written: the DLQ says where with
// its recon-source-* headers.
type tp struct {
	topic     string
	partition int32
	offset    int64
}

// hostileOracle tells a bad record from a good one the way the consume loop
// does, with the production decoder and rules of the record's system: the
// generator keeps only mutations that are really bad (a flipped bit inside a
// string is still a good record, and would change the verdicts).
type hostileOracle struct {
	dec   consumer.Decoder
	rules *compare.Rules
}

// reason is the DLQ reason of a record, "" for a good one, "skip" for a
// tombstone, truncate or message.
func (o hostileOracle) reason(key, value []byte) string {
	if len(key)+len(value) > 1<<20 { // kafka.max_record_bytes' default
		return consumer.ReasonOversized
	}
	d, err := o.dec.Decode(key, value, consumer.Meta{Offset: 1, Timestamp: time.Now()})
	var de *consumer.DecodeError
	switch {
	case errors.As(err, &de):
		return de.Reason
	case err != nil:
		return consumer.ReasonMalformed
	case d.Tombstone || d.Skip != "":
		return "skip"
	}
	src := d.Key
	if src == nil {
		src = d.Row
	}
	if _, err := o.rules.Key(src); err != nil {
		return consumer.ReasonMissingKey
	}
	if d.Op == compare.OpUpsert {
		if _, _, err := o.rules.Normalize(d.Row); err != nil {
			return consumer.ReasonBadValue
		}
	}
	return ""
}

// hostileGen writes good source and target records and mutates them into bad
// ones, deterministically from a seed.
type hostileGen struct {
	rng     *rand.Rand
	oracles map[string]hostileOracle // by topic
	lsn     int64
	avID    int // the avro source's schema id
	avCodec *goavro.Codec
}

// avValue is a Debezium Avro change of the avro source in the wire format.
func (g *hostileGen) avValue(op string, id int64, status string) []byte {
	g.lsn += 8
	row := map[string]any{"id": id, "status": goavro.Union("string", status), "note": nil}
	native := map[string]any{"before": nil, "after": goavro.Union("hostile.Value", row),
		"source": map[string]any{"connector": "postgresql", "ts_ms": int64(1718454600123), "lsn": goavro.Union("long", g.lsn)},
		"op":     op, "ts_ms": nil}
	b, err := g.avCodec.BinaryFromNative(binary.BigEndian.AppendUint32([]byte{0}, uint32(g.avID)), native)
	if err != nil {
		panic(err)
	}
	return b
}

// nextAvro returns a bad record of the avro source, or nil when the
// mutation it tried left a good one.
func (g *hostileGen) nextAvro() *bad {
	id := int64(1_000_000 + g.rng.IntN(1000))
	key, good := idKey(id), g.avValue("c", id, "new")
	var value []byte
	var class, want string
	switch c := g.rng.IntN(100); {
	case c < 10:
		class, want, value = "JSON on an Avro topic", consumer.ReasonBadMagic, tgtValue(id, "new", "n")
	case c < 15:
		class, want, value = "header cut", consumer.ReasonBadMagic, good[:1+g.rng.IntN(4)]
	case c < 20:
		class, want, value = "unknown schema id", consumer.ReasonUnknownSchemaID, append([]byte{0, 0, 0, 0x7f, byte(g.rng.IntN(256))}, good[5:]...)
	case c < 40:
		class, value = "truncated avro", good[:5+g.rng.IntN(len(good)-5)]
	case c < 60:
		class, value = "bit-flipped avro", bytes.Clone(good)
		for range 1 + g.rng.IntN(3) {
			i := 5 + g.rng.IntN(len(value)-5)
			value[i] ^= 1 << g.rng.IntN(8)
		}
	case c < 70:
		class, value = "random avro body", append(bytes.Clone(good[:5]), g.bytes(1+g.rng.IntN(64))...)
	case c < 80:
		class, want, value = "invalid UTF-8 avro string", consumer.ReasonInvalidUTF8, g.avValue("u", id, "p\xff\xfed")
	case c < 90:
		class, want, value = "unknown avro op", consumer.ReasonUnknownOp, g.avValue("insert", id, "new")
	default:
		class, want, key = "missing avro key", consumer.ReasonMissingKey, []byte(`{"uuid":"x"}`)
		value = good
	}
	got := g.oracles[hostileAvSrc].reason(key, value)
	switch {
	case want != "" && got != want:
		panic(fmt.Sprintf("generator: %s record %q refused as %q, want %q", class, value, got, want))
	case got == "" || got == "skip":
		return nil
	}
	return &bad{class: class, reason: got, rec: &kgo.Record{Topic: hostileAvSrc, Key: key, Value: value}}
}

func (g *hostileGen) srcValue(op string, id int64, status, note string) []byte {
	g.lsn += 8
	row := fmt.Sprintf(`{"id":%d,"status":%q,"amount":"12.50","note":%q}`, id, status, note)
	before, after := "null", row
	if op == "d" {
		before, after = row, "null"
	}
	return fmt.Appendf(nil, `{"before":%s,"after":%s,"source":{"connector":"postgresql","ts_ms":1718454600123,"lsn":%d},"op":%q,"ts_ms":1718454600456}`,
		before, after, g.lsn, op)
}

func tgtValue(id int64, status, note string) []byte {
	return fmt.Appendf(nil, `{"id":%d,"status":%q,"amount":"12.50","note":%q,"__op":"c","__source_ts_ms":1718454600123}`, id, status, note)
}

func idKey(id int64) []byte { return fmt.Appendf(nil, `{"id":%d}`, id) }

// bad is one hostile record: its class, and the reason it must be refused with.
type bad struct {
	class, reason string
	rec           *kgo.Record
}

// next returns a bad record. Classes built to be bad must be refused with
// their reason (the generator checks); mutations are tried until one is bad.
func (g *hostileGen) next() bad {
	for {
		topic := hostileSrc
		switch g.rng.IntN(10) {
		case 0, 1, 2, 3:
			topic = hostileTgt
		case 4, 5:
			if bd := g.nextAvro(); bd != nil {
				return *bd
			}
			continue
		}
		id := int64(1_000_000 + g.rng.IntN(1000)) // keys no good record uses
		good := tgtValue(id, "new", "n")
		if topic == hostileSrc {
			good = g.srcValue("c", id, "new", "n")
		}
		key, want := idKey(id), ""
		var value []byte
		var class string
		switch c := g.rng.IntN(100); {
		case c < 15:
			class, value = "random bytes", g.bytes(1+g.rng.IntN(256))
			key = g.bytes(g.rng.IntN(16))
		case c < 30:
			class, value = "truncated", good[:1+g.rng.IntN(len(good)-1)]
			want = consumer.ReasonMalformed
		case c < 45:
			class, value = "bit flips", bytes.Clone(good)
			for range 1 + g.rng.IntN(3) {
				value[g.rng.IntN(len(value))] ^= 1 << g.rng.IntN(8)
			}
		case c < 50:
			// Confluent's wire format on a JSON topic: magic 0, schema id, Avro.
			class, value = "avro wire format", append([]byte{0, 0, 0, 0, byte(1 + g.rng.IntN(9))}, g.bytes(20+g.rng.IntN(60))...)
		case c < 53:
			class, value = "wrong magic", append([]byte{byte(1 + g.rng.IntN(255)), 0, 0, 0, 1}, good...)
		case c < 60:
			class, want = "unknown op", consumer.ReasonUnknownOp
			value = bytes.Replace(good, []byte(`"op":"c"`), []byte(`"op":"x"`), 1)
			if topic == hostileTgt {
				value = bytes.Replace(good, []byte(`"__op":"c"`), []byte(`"__op":"insert"`), 1)
			}
		case c < 67:
			// The key names another column and the row has no id.
			class, want = "missing key", consumer.ReasonMissingKey
			key, value = []byte(`{"uuid":"x"}`), bytes.Replace(good, []byte(`"id":`), []byte(`"no":`), 1)
		case c < 72:
			class, want = "deep nesting", consumer.ReasonTooDeep
			depth := 65 + g.rng.IntN(200)
			value = bytes.Replace(good, []byte(`"note":"n"`), []byte(`"note":`+nestedArrays(depth)), 1)
		case c < 80:
			class, want = "invalid UTF-8", consumer.ReasonInvalidUTF8
			value = bytes.Replace(good, []byte(`"note":"n"`), []byte("\"note\":\"n\xff\xfe\xc0\x80\""), 1)
		case c < 86:
			class, key, value = "tombstone with a garbage key", g.bytes(1+g.rng.IntN(40)), nil
		case c < 93:
			shapes := [][]byte{[]byte(`[1,2,3]`), []byte(`"a string"`), []byte(`42`), []byte(`{"op":"c"}`), []byte(`{}`), []byte(`{"schema":{},"payload":[]}`), []byte(`true`)}
			class, value = "wrong shape", shapes[g.rng.IntN(len(shapes))]
		default:
			class, want = "empty key and row", consumer.ReasonMissingKey
			key = nil
			if topic == hostileSrc {
				value = []byte(`{"before":null,"after":{},"source":{"lsn":1},"op":"c"}`)
			} else {
				value = []byte(`{"__op":"c"}`)
			}
		}
		got := g.oracles[topic].reason(key, value)
		switch {
		case want != "" && got != want:
			panic(fmt.Sprintf("generator: %s record %q refused as %q, want %q", class, value, got, want))
		case got == "" || got == "skip":
			continue // the mutation left a good record, or a tombstone: not hostile
		}
		return bad{class: class, reason: got, rec: &kgo.Record{Topic: topic, Key: key, Value: value}}
	}
}

func (g *hostileGen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rng.UintN(256))
	}
	return b
}

func nestedArrays(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// TestHostileInput feeds 100,000 random and mutated records (random bytes,
// truncated and bit-flipped Debezium and flat JSON, Avro wire format and
// wrong magic bytes on JSON topics, unknown ops, missing keys, records over
// max_record_bytes, 100k-deep nesting, invalid UTF-8, tombstones with garbage
// keys, wrong shapes) interleaved with good records through recon over TCP,
// into Badger: every bad record lands in the DLQ once, by source offset, with
// the reason its decoder gives (recon-error); the DLQ metric counts them by
// reason; records over max_record_bytes are cut to fit the DLQ; empty values
// are skipped as tombstones, not DLQ'd; and the good records around them are
// judged exactly: the seven injected divergences, and no other.
func TestHostileInput(t *testing.T) {
	nBad := hostileSize(t)
	b, err := broker.Start(broker.Options{Partitions: 4, SchemaRegistry: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	g := &hostileGen{rng: rand.New(rand.NewPCG(5, 42)), oracles: map[string]hostileOracle{}}
	srcl, err := sr.NewClient(sr.URLs(b.SchemaRegistryURL()), sr.HTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := srcl.CreateSchema(ctx, hostileAvSrc+"-value", sr.Schema{Schema: hostileAvroSchema})
	if err != nil {
		t.Fatal(err)
	}
	if g.avCodec, err = goavro.NewCodec(hostileAvroSchema); err != nil {
		t.Fatal(err)
	}
	g.avID = ss.ID
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ProducerBatchMaxBytes(4<<20),
		kgo.ProducerLinger(20*time.Millisecond), kgo.MaxBufferedRecords(1<<20), kgo.MaxBufferedBytes(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	// The inputs take records over 1 MiB, as a topic raised for big rows does.
	maxMsg := strconv.Itoa(8 << 20)
	if _, err := kadm.NewClient(prod).CreateTopics(ctx, 4, 1, map[string]*string{"max.message.bytes": &maxMsg},
		hostileSrc, hostileTgt, hostileAvSrc, hostileAvTgt); err != nil {
		t.Fatal(err)
	}

	cfg, err := config.Parse(fmt.Appendf(nil, `
kafka: {brokers: [%s], group: recon-hostile}
schema_registry: {url: %s}
state: {dir: %s}
http: {listen: "127.0.0.1:0"}
digest: {key: "test-digest-key-0123456789"}
datasets:
  - name: orders
    key: [id]
    window: 1s
    source: {name: pg, topic: %s, format: debezium-json, version: lsn}
    targets:
      - {name: replica, topic: %s, format: flat-json, version: offset}
    repair: {mode: "off"}
  - name: orders_avro
    key: [id]
    window: 1s
    source: {name: pgavro, topic: %s, format: debezium-avro, version: lsn}
    targets:
      - {name: replica2, topic: %s, format: flat-json, version: offset}
    repair: {mode: "off"}
`, b.Addr(), b.SchemaRegistryURL(), t.TempDir(), hostileSrc, hostileTgt, hostileAvSrc, hostileAvTgt), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	reg, err := schemas.NewRegistry(b.SchemaRegistryURL())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range cfg.Datasets {
		for _, s := range []config.System{d.Source, d.Targets[0]} {
			dec, err := SystemDecoder(s, reg)
			if err != nil {
				t.Fatal(err)
			}
			rules, err := SystemRules(d, s)
			if err != nil {
				t.Fatal(err)
			}
			g.oracles[s.Topic] = hostileOracle{dec: dec, rules: rules}
		}
	}

	// Good records, in order per key; the injected divergences (keys 1-7)
	// and rows with 900 KiB columns (keys 10-12) among them.
	want := map[string]string{"orders/replica/1": "missing", "orders/replica/2": "missing", "orders/replica/3": "missing",
		"orders/replica/4": "conflict", "orders/replica/5": "conflict", "orders/replica/6": "orphan", "orders/replica/7": "lagging",
		"orders_avro/replica2/1": "missing", "orders_avro/replica2/2": "conflict"}
	var good []*kgo.Record
	src := func(op string, id int64, status, note string) {
		good = append(good, &kgo.Record{Topic: hostileSrc, Key: idKey(id), Value: g.srcValue(op, id, status, note)})
	}
	tgt := func(id int64, status, note string) {
		good = append(good, &kgo.Record{Topic: hostileTgt, Key: idKey(id), Value: tgtValue(id, status, note)})
	}
	for id := int64(1); id <= 3; id++ {
		src("c", id, "new", "n")
	}
	for id := int64(4); id <= 5; id++ {
		src("c", id, "new", "n")
		tgt(id, "lost", "n")
	}
	src("c", 6, "new", "n")
	tgt(6, "new", "n")
	src("d", 6, "new", "n")
	good = append(good, &kgo.Record{Topic: hostileSrc, Key: idKey(6)}) // the tombstone after the delete
	src("c", 7, "new", "n")
	tgt(7, "new", "n")
	src("u", 7, "paid", "n")
	huge := strings.Repeat("h", 900<<10)
	for id := int64(10); id <= 12; id++ {
		src("c", id, "new", huge)
		tgt(id, "new", huge)
	}
	// The avro dataset: key 1 missing, key 2 conflicting, the rest in sync.
	good = append(good, &kgo.Record{Topic: hostileAvSrc, Key: idKey(1), Value: g.avValue("c", 1, "new")},
		&kgo.Record{Topic: hostileAvSrc, Key: idKey(2), Value: g.avValue("c", 2, "new")},
		&kgo.Record{Topic: hostileAvTgt, Key: idKey(2), Value: []byte(`{"id":2,"status":"lost","note":null}`)})
	for id := int64(100); id < int64(100+max(50, nBad/200)); id++ {
		good = append(good, &kgo.Record{Topic: hostileAvSrc, Key: idKey(id), Value: g.avValue("c", id, "new")},
			&kgo.Record{Topic: hostileAvTgt, Key: idKey(id), Value: fmt.Appendf(nil, `{"id":%d,"status":"new","note":null}`, id)})
	}
	nKeys := max(200, nBad/20)
	for id := int64(100); id < int64(100+nKeys); id++ {
		src("c", id, "new", "n")
		tgt(id, "new", "n")
		if id%3 == 0 {
			src("u", id, "paid", "n")
			tgt(id, "paid", "n")
		}
	}

	// Interleave: bad records, records over max_record_bytes and empty
	// values (tombstones, which are skipped) between the good ones.
	var all []*kgo.Record
	bads := make(map[*kgo.Record]bad, nBad)
	addBad := func(bd bad) { bads[bd.rec] = bd; all = append(all, bd.rec) }
	empties, gi := 0, 0
	for i := range nBad {
		for ; gi < len(good) && gi*nBad <= i*len(good); gi++ {
			all = append(all, good[gi])
		}
		switch {
		case i%20_000 == 0: // over max_record_bytes: 5 per 100,000
			topic := []string{hostileSrc, hostileTgt}[i/20_000%2]
			addBad(bad{class: "oversized", reason: consumer.ReasonOversized,
				rec: &kgo.Record{Topic: topic, Key: idKey(1_000_001), Value: tgtValue(1_000_001, "new", strings.Repeat("o", 1<<20))}})
		case i%1000 == 1: // 100k levels of [ in a column
			addBad(bad{class: "100k-deep", reason: consumer.ReasonTooDeep,
				rec: &kgo.Record{Topic: hostileTgt, Key: idKey(1_000_002), Value: fmt.Appendf(nil, `{"id":1000002,"x":%s,"__op":"c"}`, nestedArrays(100_000))}})
		default:
			addBad(g.next())
		}
		if i%500 == 2 { // an empty value with a good key: a tombstone, skipped
			empties++
			all = append(all, &kgo.Record{Topic: hostileSrc, Key: idKey(int64(100 + i%nKeys))})
		}
	}
	all = append(all, good[gi:]...)

	// Every record carries the source's commit time as its timestamp, as a
	// connector stamps it: the watermark rule also counts a target
	// partition as read far enough once its newest record is a window newer
	// than the source change, and records stamped now against changes made
	// in 2024 would be years newer, firing windows before the target's
	// copies are read.
	for _, r := range all {
		r.Timestamp = hostileCommitTime
	}
	start := time.Now()
	produceAll(t, prod, all)
	t.Logf("produced %d records (%d bad, %d good, %d empty values) in %v", len(all), len(bads), len(good), empties, time.Since(start))
	wantDLQ := make(map[tp]bad, len(bads))
	classes := map[string]int{}
	for r, bd := range bads {
		wantDLQ[tp{r.Topic, r.Partition, r.Offset}] = bd
		classes[bd.class]++
	}
	t.Logf("bad records by class: %v", classes)

	dlq := readDLQ(t, b.Addr(), cfg.Outputs.DLQ)
	divs := readEvents(t, b.Addr(), cfg.Outputs.Divergences)
	metrics := prometheus.NewRegistry()
	runCtx, cancel := context.WithCancel(ctx)
	p, err := New(runCtx, cfg, Options{Registry: metrics, SweepTick: 20 * time.Millisecond, ListInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("pipeline run: %v", err)
			}
		}
	}
	t.Cleanup(stop)

	start = time.Now()
	waitFor(t, 10*time.Minute, fmt.Sprintf("%d DLQ records", len(bads)), func() bool { return dlq.count() >= len(bads) })
	t.Logf("recon read %d records and published %d to the DLQ in %v", len(all), dlq.count(), time.Since(start))

	// A marker whose window expires after every other: once its verdict is
	// out, every window opened by the records above has been judged.
	marker := &kgo.Record{Topic: hostileSrc, Key: idKey(99_999), Value: g.srcValue("c", 99_999, "new", "n"), Timestamp: hostileCommitTime}
	produceAll(t, prod, []*kgo.Record{marker})
	want["orders/replica/99999"] = "missing"
	waitFor(t, 2*time.Minute, "the marker's divergence", func() bool {
		for _, e := range divs.events() {
			if strings.HasSuffix(e.Key, "/99999") {
				return true
			}
		}
		return false
	})
	stop()

	// Every bad record is in the DLQ exactly once, with its reason; no
	// other record is.
	got := dlq.all()
	byReason := map[string]int{}
	for at, rec := range got {
		bd, ok := wantDLQ[at]
		if !ok {
			t.Errorf("DLQ holds %v, which is no bad record", at)
			continue
		}
		if rec.copies != 1 {
			t.Errorf("%v (%s) is in the DLQ %d times", at, bd.class, rec.copies)
		}
		if rec.reason != bd.reason {
			t.Errorf("%v (%s): DLQ reason %q (recon-error %q), want %q", at, bd.class, rec.reason, rec.err, bd.reason)
		}
		if wantCut := bd.reason == consumer.ReasonOversized; rec.truncated != wantCut || (wantCut && rec.valueLen > consumer.DefaultDLQMaxBytes) {
			t.Errorf("%v (%s): recon-truncated %v with %d bytes of value", at, bd.class, rec.truncated, rec.valueLen)
		}
		byReason[rec.reason]++
	}
	for at, bd := range wantDLQ {
		if _, ok := got[at]; !ok {
			t.Errorf("bad record %v (%s, %s) is not in the DLQ", at, bd.class, bd.reason)
		}
	}
	t.Logf("DLQ records by reason: %v", byReason)

	// The metric counts them by reason, over every system.
	for _, reason := range consumer.Reasons() {
		n := 0.0
		for _, ds := range [][2]string{{"orders", "pg"}, {"orders", "replica"}, {"orders_avro", "pgavro"}, {"orders_avro", "replica2"}} {
			n += testutil.ToFloat64(dlqMetric(t, metrics, ds[0], ds[1], reason))
		}
		if int(n) != byReason[reason] {
			t.Errorf("recon_dlq_records_total{reason=%q} = %v, want %d", reason, n, byReason[reason])
		}
	}
	tombstones := testutil.ToFloat64(skippedMetric(t, metrics, "pg", "tombstone"))
	if int(tombstones) != empties+1 { // and the one after key 6's delete
		t.Errorf("tombstones skipped = %v, want %d", tombstones, empties+1)
	}

	// The good records are judged exactly: the injected divergences, each
	// opened once, and nothing else.
	opened := map[string][]string{}
	for _, e := range divs.events() {
		if e.Body["event"] != "opened" {
			t.Errorf("unexpected divergence event %v %s", e.Body["event"], e.Key)
			continue
		}
		opened[e.Key] = append(opened[e.Key], e.Headers["recon-kind"])
	}
	for k, kind := range want {
		if got := opened[k]; len(got) != 1 || got[0] != kind {
			t.Errorf("key %s: divergences %v, want one %s", k, got, kind)
		}
	}
	for k, kinds := range opened {
		if _, ok := want[k]; !ok {
			t.Errorf("false positive: key %s %v", k, kinds)
		}
	}
}

// produceAll produces records in order and waits for all of them: each then
// knows its partition and offset.
func produceAll(t *testing.T, cl *kgo.Client, recs []*kgo.Record) {
	t.Helper()
	var mu sync.Mutex
	var firstErr error
	for _, r := range recs {
		cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("producing to %s (%d bytes): %w", r.Topic, len(r.Value), err)
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}

func dlqMetric(t *testing.T, reg *prometheus.Registry, dataset, system, reason string) prometheus.Collector {
	return metricWith(t, reg, "recon_dlq_records_total", map[string]string{"dataset": dataset, "system": system, "reason": reason})
}

func skippedMetric(t *testing.T, reg *prometheus.Registry, system, kind string) prometheus.Collector {
	return metricWith(t, reg, "recon_records_skipped_total", map[string]string{"dataset": "orders", "system": system, "kind": kind})
}

// metricWith is a constant collector of the value of one series of reg (0
// when the series does not exist), for testutil.ToFloat64.
func metricWith(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue series
				}
			}
			v += m.GetCounter().GetValue()
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return v })
}

// dlqCopy is what the test keeps of one DLQ record.
type dlqCopy struct {
	copies       int
	reason, err  string
	truncated    bool
	valueLen     int
	originalSize string
}

type dlqReader struct {
	mu   sync.Mutex
	recs map[tp]*dlqCopy
	n    int
}

func (r *dlqReader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *dlqReader) all() map[tp]dlqCopy {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[tp]dlqCopy, len(r.recs))
	for k, v := range r.recs {
		out[k] = *v
	}
	return out
}

// readDLQ reads the DLQ topic from its start until the test ends, keeping
// each record's source position, reason and size, not its bytes.
func readDLQ(t *testing.T, addr, topic string) *dlqReader {
	t.Helper()
	r := &dlqReader{recs: map[tp]*dlqCopy{}}
	consume(t, addr, []string{topic}, func(rec *kgo.Record) {
		hs := map[string]string{}
		for _, h := range rec.Headers {
			hs[h.Key] = string(h.Value)
		}
		p, err1 := strconv.ParseInt(hs["recon-source-partition"], 10, 32)
		o, err2 := strconv.ParseInt(hs["recon-source-offset"], 10, 64)
		if err1 != nil || err2 != nil || hs["recon-source-topic"] == "" || hs["recon-error"] == "" {
			t.Errorf("DLQ record without its source or reason: %v", hs)
			return
		}
		at := tp{hs["recon-source-topic"], int32(p), o}
		reason, _, _ := strings.Cut(hs["recon-error"], ":")
		r.mu.Lock()
		defer r.mu.Unlock()
		r.n++
		c := r.recs[at]
		if c == nil {
			c = &dlqCopy{reason: reason, err: hs["recon-error"], truncated: hs["recon-truncated"] == "true",
				valueLen: len(rec.Value), originalSize: hs["recon-original-size"]}
			r.recs[at] = c
		}
		c.copies++
	})
	return r
}

type topicReader struct {
	mu  sync.Mutex
	evs []outEvent
}

func (r *topicReader) events() []outEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]outEvent(nil), r.evs...)
}

// readEvents reads a topic of JSON events from its start until the test ends.
func readEvents(t *testing.T, addr, topic string) *topicReader {
	t.Helper()
	r := &topicReader{}
	consume(t, addr, []string{topic}, func(rec *kgo.Record) {
		ev := outEventOf(rec)
		if err := json.Unmarshal(rec.Value, &ev.Body); err != nil {
			t.Errorf("%s: %v", topic, err)
		}
		r.mu.Lock()
		r.evs = append(r.evs, ev)
		r.mu.Unlock()
	})
	return r
}

// TestDLQCopyCutToFitTopic: a record larger than the DLQ topic's
// max.message.bytes is cut to fit, with recon-truncated and
// recon-original-size, so that the broker takes it and the outbox keeps
// flowing: a divergence written after it is published.
func TestDLQCopyCutToFitTopic(t *testing.T) {
	h := newHarness(t, 200*time.Millisecond, "off")
	ctx := context.Background()
	adm := kadm.NewClient(h.prod)
	const topicMax = 64 << 10
	limit := strconv.Itoa(topicMax)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, h.cfg.Outputs.DLQ); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatal(err)
	}
	resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &limit}}, h.cfg.Outputs.DLQ)
	if err == nil {
		_, err = resp.On(h.cfg.Outputs.DLQ, nil)
	}
	if err != nil {
		t.Fatalf("setting the DLQ topic's max.message.bytes: %v", err)
	}
	h.start()

	// Random letters: the producer compresses batches, and the broker
	// measures them compressed.
	rng := rand.New(rand.NewPCG(1, 2))
	letters := make([]byte, 200<<10)
	for i := range letters {
		letters[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[rng.IntN(64)]
	}
	garbage := string(letters)
	h.produce(srcTopic, `{"id":1}`, garbage)
	h.source("c", 100, row{ID: 2, Amount: "1.00", Status: "new", Created: created}) // missing in the target

	dlq := h.waitOutputs(h.cfg.Outputs.DLQ, 1)
	d := dlq[0]
	raw, _ := d.Body["raw"].(string)
	size := len(d.Key) + len(raw)
	for k, v := range d.Headers {
		size += len(k) + len(v)
	}
	if d.Headers["recon-truncated"] != "true" || d.Headers["recon-original-size"] != strconv.Itoa(len(`{"id":1}`)+len(garbage)) {
		t.Errorf("DLQ copy headers %v: want recon-truncated and recon-original-size", d.Headers)
	}
	if size > topicMax || !strings.HasPrefix(garbage, raw) || len(raw) < topicMax/2 {
		t.Errorf("DLQ copy of %d bytes (value %d): want a prefix of the record under %d bytes", size, len(raw), topicMax)
	}
	if d.Key != `{"id":1}` || !strings.HasPrefix(d.Headers["recon-error"], consumer.ReasonMalformed+":") {
		t.Errorf("DLQ copy key %q, recon-error %q", d.Key, d.Headers["recon-error"])
	}
	divs := h.waitOutputs(h.cfg.Outputs.Divergences, 1)
	if divs[0].Key != "orders/warehouse/2" || divs[0].Headers["recon-kind"] != "missing" {
		t.Errorf("divergence %s %v, want key 2 missing", divs[0].Key, divs[0].Headers)
	}
}
