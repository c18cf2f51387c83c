package pipeline

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/broker"
	"github.com/recon-dev/recon/config"
)

// The hand-made case of the core issue: a schema-wrapped Postgres source
// (Decimal as base64 bytes, MicroTimestamp) against a plain MySQL-style target
// (renamed key column, decimals as strings, ISO timestamps, binlog positions,
// a load-time column the config ignores, lineage to the source LSN).
const (
	srcTopic = "pg.public.orders"
	tgtTopic = "wh.public.orders"
)

type harness struct {
	t          *testing.T
	broker     *broker.Broker
	brokerOpts broker.Options // what the broker was started with, for restarts
	cfg        *config.Config
	prod       *kgo.Client

	mu     sync.Mutex
	events []outEvent
}

type outEvent struct {
	Topic   string
	Key     string
	Headers map[string]string
	Body    map[string]any
}

func newHarness(t *testing.T, window time.Duration, mode string) *harness {
	t.Helper()
	return newHarnessWith(t, window, mode, "debezium-json", "position")
}

// newHarnessWith lets the target's format and version vary.
func newHarnessWith(t *testing.T, window time.Duration, mode, tgtFormat, tgtVersion string) *harness {
	t.Helper()
	return newHarnessOn(t, broker.Options{}, window, mode, tgtFormat, tgtVersion)
}

// newHarnessOn starts the broker with bopts (its partitions and topics are
// the harness's), e.g. with a data dir so that it can be restarted.
func newHarnessOn(t *testing.T, bopts broker.Options, window time.Duration, mode, tgtFormat, tgtVersion string) *harness {
	t.Helper()
	bopts.Partitions, bopts.Topics = 1, []string{srcTopic, tgtTopic}
	b, err := broker.Start(bopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfgText := fmt.Sprintf(`
kafka: {brokers: [%s], group: recon-test}
state: {dir: %s}
http: {listen: "127.0.0.1:0"}
digest: {key: "test-digest-key-0123456789"}
datasets:
  - name: orders
    key: [id]
    window: %s
    source: {name: postgres, topic: %s, format: debezium-json, version: lsn}
    targets:
      - {name: warehouse, topic: %s, format: %s, version: %s,
         lineage: "field:_src_lsn", rename: {order_id: id}}
    compare: {ignore: [updated_at, loaded_at], types: {amount: "decimal(2)", created_at: timestamp}}
    repair: {mode: %s, auto_kinds: [missing, lagging, orphan], payload: full}
`, b.Addr(), t.TempDir(), window, srcTopic, tgtTopic, tgtFormat, tgtVersion, mode)
	cfg, err := config.Parse([]byte(cfgText), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(srcTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	h := &harness{t: t, broker: b, brokerOpts: bopts, cfg: cfg, prod: prod}
	h.readOutputs()
	return h
}

// start runs recon until the returned stop is called (or the test ends).
func (h *harness) start() (p *Pipeline, stop func()) {
	h.t.Helper()
	return h.startWith(Options{})
}

// startWith is start with opts; the harness's sweep tick and list interval
// fill in what opts leaves zero.
func (h *harness) startWith(opts Options) (p *Pipeline, stop func()) {
	h.t.Helper()
	if opts.SweepTick == 0 {
		opts.SweepTick = 20 * time.Millisecond
	}
	if opts.ListInterval == 0 {
		opts.ListInterval = 50 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := New(ctx, h.cfg, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("pipeline run: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	waitFor(h.t, 10*time.Second, "consumer joined", p.Ready)
	return p, stop
}

func (h *harness) readOutputs() {
	h.t.Helper()
	consume(h.t, h.broker.Addr(), []string{h.cfg.Outputs.Divergences, h.cfg.Outputs.Repairs, h.cfg.Outputs.DLQ}, func(r *kgo.Record) {
		ev := outEventOf(r)
		if r.Topic != h.cfg.Outputs.DLQ {
			if err := json.Unmarshal(r.Value, &ev.Body); err != nil {
				h.t.Errorf("output %s is not JSON: %v", r.Topic, err)
			}
		} else {
			ev.Body = map[string]any{"raw": string(r.Value)}
		}
		h.keep(ev)
	})
}

// consume calls fn for every record of topics, from their start, in a
// goroutine that the test's cleanup stops.
func consume(t *testing.T, addr string, topics []string, fn func(*kgo.Record)) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation(),
		kgo.FetchMaxBytes(64<<20), kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachRecord(fn)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
}

// outEventOf is r with its headers as a map; the caller fills Body.
func outEventOf(r *kgo.Record) outEvent {
	ev := outEvent{Topic: r.Topic, Key: string(r.Key), Headers: map[string]string{}}
	for _, hd := range r.Headers {
		ev.Headers[hd.Key] = string(hd.Value)
	}
	return ev
}

// keep records an output event the harness read.
func (h *harness) keep(ev outEvent) {
	h.mu.Lock()
	h.events = append(h.events, ev)
	h.mu.Unlock()
}

// outputs returns the output events seen so far on topic.
func (h *harness) outputs(topic string) []outEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []outEvent
	for _, e := range h.events {
		if e.Topic == topic {
			out = append(out, e)
		}
	}
	return out
}

func (h *harness) waitOutputs(topic string, n int) []outEvent {
	h.t.Helper()
	waitFor(h.t, 20*time.Second, fmt.Sprintf("%d records on %s", n, topic), func() bool { return len(h.outputs(topic)) >= n })
	return h.outputs(topic)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// row is one orders row in the dataset's terms.
type row struct {
	ID      int64
	Amount  string // "12.50"
	Status  string
	Created time.Time
}

func decimalB64(s string, scale int) string {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic("bad decimal " + s)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	n := r.Num()
	var b []byte
	if n.Sign() >= 0 {
		b = n.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
	} else {
		// Two's complement of a negative number in the fewest bytes.
		l := (n.BitLen() + 8) / 8
		m := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), uint(8*l)), n)
		b = m.FillBytes(make([]byte, l))
	}
	return base64.StdEncoding.EncodeToString(b)
}

const pgRowSchema = `{"type":"struct","optional":true,"name":"pg.public.orders.Value","field":"%s","fields":[
{"type":"int64","optional":false,"field":"id"},
{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"amount"},
{"type":"string","optional":true,"field":"status"},
{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"created_at"},
{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"updated_at"}]}`

func pgSchema() string {
	return `{"type":"struct","optional":false,"name":"pg.public.orders.Envelope","fields":[` +
		fmt.Sprintf(pgRowSchema, "before") + "," + fmt.Sprintf(pgRowSchema, "after") +
		`,{"type":"struct","optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source","fields":[
{"type":"string","optional":false,"field":"connector"},{"type":"int64","optional":false,"field":"ts_ms"},
{"type":"string","optional":true,"name":"io.debezium.data.Enum","field":"snapshot"},
{"type":"int64","optional":true,"field":"lsn"}]},
{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}]}`
}

func pgRow(r row) string {
	return fmt.Sprintf(`{"id":%d,"amount":"%s","status":"%s","created_at":%d,"updated_at":%d}`,
		r.ID, decimalB64(r.Amount, 2), r.Status, r.Created.UnixMicro(), time.Now().UnixMicro())
}

// source produces a Postgres change of r at lsn; op is c, u, r or d.
func (h *harness) source(op string, lsn int64, r row) {
	h.t.Helper()
	before, after := "null", pgRow(r)
	if op == "d" {
		before, after = pgRow(r), "null"
	}
	now := time.Now().UnixMilli()
	payload := fmt.Sprintf(`{"before":%s,"after":%s,"source":{"connector":"postgresql","ts_ms":%d,"snapshot":"false","lsn":%d},"op":"%s","ts_ms":%d}`,
		before, after, now, lsn, op, now)
	key := fmt.Sprintf(`{"schema":{"type":"struct","optional":false,"name":"pg.public.orders.Key","fields":[{"type":"int64","optional":false,"field":"id"}]},"payload":{"id":%d}}`, r.ID)
	value := `{"schema":` + pgSchema() + `,"payload":` + payload + `}`
	h.produce(srcTopic, key, value)
	if op == "d" {
		h.produce(srcTopic, key, "") // the tombstone after a delete
	}
}

// target produces a MySQL-style change at binlog position pos, derived from
// source version srcLSN.
func (h *harness) target(op string, pos int64, srcLSN int64, r row) {
	h.t.Helper()
	cols := fmt.Sprintf(`{"order_id":%d,"amount":"%s","status":"%s","created_at":"%s","loaded_at":"%s","_src_lsn":%d}`,
		r.ID, r.Amount, r.Status, r.Created.UTC().Format(time.RFC3339Nano), time.Now().UTC().Format(time.RFC3339Nano), srcLSN)
	before, after := "null", cols
	if op == "d" {
		before, after = cols, "null"
	}
	payload := fmt.Sprintf(`{"before":%s,"after":%s,"source":{"connector":"mysql","file":"mysql-bin.000003","pos":%d,"row":0,"ts_ms":%d},"op":"%s"}`,
		before, after, pos, time.Now().UnixMilli(), op)
	h.produce(tgtTopic, fmt.Sprintf(`{"order_id":%d}`, r.ID), payload)
}

func (h *harness) produce(topic, key, value string) {
	h.t.Helper()
	rec := &kgo.Record{Topic: topic, Key: []byte(key)}
	if value != "" {
		rec.Value = []byte(value)
	}
	if err := h.prod.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		h.t.Fatalf("producing to %s: %v", topic, err)
	}
}

func kindsOf(evs []outEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s %v %v", e.Headers["recon-kind"]+e.Headers["recon-action"], e.Body["event"], e.Key))
	}
	return out
}
