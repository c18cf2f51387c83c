package pipeline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/recon-dev/recon/broker"
	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/schemas"
)

func avroConfig(t *testing.T, brokerAddr, registryURL string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
kafka: {brokers: [%s], group: recon-test}
schema_registry: {url: %q}
state: {dir: %s}
http: {listen: "127.0.0.1:0"}
digest: {key: "test-digest-key-0123456789"}
outputs: {format: avro}
datasets:
  - name: orders
    key: [id]
    window: 1s
    source: {name: postgres, topic: %s, format: debezium-json, version: lsn}
    targets:
      - {name: warehouse, topic: %s, format: debezium-json, version: position,
         lineage: "field:_src_lsn", rename: {order_id: id}}
    compare: {ignore: [updated_at, loaded_at], types: {amount: "decimal(2)", created_at: timestamp}}
    repair: {mode: auto, auto_kinds: [missing, lagging, orphan], payload: full}
`, brokerAddr, registryURL, t.TempDir(), srcTopic, tgtTopic)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// avroWire is what the wire format of one output record said.
type avroWire struct {
	topic string
	magic byte
	id    int
}

// readAvroOutputs reads the output topics like readOutputs, but decodes each
// divergence and repair as a consumer would: the schema id in the record
// names the writer schema, fetched from the registry.
func (h *harness) readAvroOutputs(registryURL string) (wires func() []avroWire) {
	reg, err := sr.NewClient(sr.URLs(registryURL))
	if err != nil {
		h.t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen []avroWire
	)
	decode := func(r *kgo.Record) (map[string]any, error) {
		if len(r.Value) < 5 {
			return nil, fmt.Errorf("%d bytes, no wire-format header", len(r.Value))
		}
		id := int(binary.BigEndian.Uint32(r.Value[1:5]))
		mu.Lock()
		seen = append(seen, avroWire{topic: r.Topic, magic: r.Value[0], id: id})
		mu.Unlock()
		s, err := reg.SchemaByID(context.Background(), id)
		if err != nil {
			return nil, err
		}
		codec, err := goavro.NewCodec(s.Schema)
		if err != nil {
			return nil, err
		}
		native, rest, err := codec.NativeFromBinary(r.Value[5:])
		if err != nil || len(rest) > 0 {
			return nil, fmt.Errorf("decoding with schema %d: %v (%d bytes left)", id, err, len(rest))
		}
		oc, err := schemas.NewOutputCodec(s.Schema)
		if err != nil {
			return nil, err
		}
		js, err := oc.JSON(native)
		if err != nil {
			return nil, err
		}
		var body map[string]any
		return body, json.Unmarshal(js, &body)
	}
	consume(h.t, h.broker.Addr(), []string{h.cfg.Outputs.Divergences, h.cfg.Outputs.Repairs, h.cfg.Outputs.DLQ}, func(r *kgo.Record) {
		ev := outEventOf(r)
		if r.Topic == h.cfg.Outputs.DLQ {
			ev.Body = map[string]any{"raw": string(r.Value)}
		} else if body, err := decode(r); err != nil {
			h.t.Errorf("output %s is not avro of a registered schema: %v", r.Topic, err)
		} else {
			ev.Body = body
		}
		h.keep(ev)
	})
	return func() []avroWire {
		mu.Lock()
		defer mu.Unlock()
		return append([]avroWire(nil), seen...)
	}
}

// With outputs.format avro, a missing row yields the same divergence and
// repair as in JSON (TestVerdictsEndToEnd), in the Confluent wire format with
// the ids registered under <topic>-value.
func TestAvroOutputsEndToEnd(t *testing.T) {
	reg := srfake.New()
	t.Cleanup(reg.Close)
	b, err := broker.Start(broker.Options{Partitions: 1, Topics: []string{srcTopic, tgtTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(srcTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	h := &harness{t: t, broker: b, cfg: avroConfig(t, b.Addr(), reg.URL()), prod: prod}
	wires := h.readAvroOutputs(reg.URL())
	h.start()

	h.source("c", 100, row{ID: 1, Amount: "12.50", Status: "new", Created: created})
	divs := h.waitOutputs(h.cfg.Outputs.Divergences, 1)
	reps := h.waitOutputs(h.cfg.Outputs.Repairs, 1)
	if len(divs) != 1 || len(reps) != 1 {
		t.Fatalf("divergences %v, repairs %v; want one of each", kindsOf(divs), kindsOf(reps))
	}

	if len(wires()) != 2 {
		t.Errorf("wire formats seen %v, want one divergence and one repair", wires())
	}
	for _, w := range wires() {
		ss, ok := reg.GetSchema(w.topic+"-value", 1)
		if w.magic != 0 || !ok || w.id != ss.ID {
			t.Errorf("%s: magic %d, schema id %d; want magic 0 and the id of subject %s-value (%d, %v)", w.topic, w.magic, w.id, w.topic, ss.ID, ok)
		}
		want := map[string]string{h.cfg.Outputs.Divergences: "dev.recon.Divergence", h.cfg.Outputs.Repairs: "dev.recon.Repair"}[w.topic]
		if c, err := schemas.NewOutputCodec(ss.Schema.Schema); err != nil || c.Name() != want {
			t.Errorf("%s-value holds a schema that is not %s: %v", w.topic, want, err)
		}
	}

	d := divs[0]
	if d.Key != "orders/warehouse/1" || d.Body["event"] != "opened" || d.Body["kind"] != "missing" || d.Headers["recon-kind"] != "missing" ||
		d.Headers["recon-dataset"] != "orders" || d.Headers["recon-id"] != d.Body["id"] {
		t.Errorf("divergence %s %v %v", d.Key, d.Headers, d.Body)
	}
	miss := d.Body
	if !reflect.DeepEqual(miss["key"], map[string]any{"id": float64(1)}) || miss["target_state"] != nil ||
		field(miss, "source", "version") != "100" || field(miss, "source", "deleted") != false ||
		miss["window_ms"] != float64(1000) || miss["dataset"] != "orders" || miss["target"] != "warehouse" || miss["rationale"] == "" {
		t.Errorf("missing divergence: %v", miss)
	}
	// The JSON form's fields, and resolved_at, which JSON omits and Avro has as null.
	wantFields := []string{"config_hash", "dataset", "detected_at", "event", "id", "key", "kind", "opened_at", "rationale", "resolved_at", "rules_version", "source", "target", "target_state", "window_ms"}
	if keys := sortedKeys(miss); !reflect.DeepEqual(keys, wantFields) || miss["resolved_at"] != nil {
		t.Errorf("divergence fields %v, want %v with resolved_at null", keys, wantFields)
	}
	opened, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(miss["opened_at"]))
	detected, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(miss["detected_at"]))
	if err1 != nil || err2 != nil || detected.Sub(opened) < time.Second || detected.Truncate(time.Millisecond) != detected {
		t.Errorf("opened_at %v, detected_at %v: want millisecond times a window apart", miss["opened_at"], miss["detected_at"])
	}

	r := reps[0]
	mr := r.Body
	wantAfter := map[string]any{"order_id": float64(1), "amount": "12.50", "status": "new", "created_at": "2024-06-15T12:30:00.123456Z"}
	if r.Key != "orders/warehouse/1" || r.Headers["recon-action"] != "upsert" || r.Headers["recon-id"] != mr["id"] ||
		mr["action"] != "upsert" || mr["kind"] != "missing" || mr["source_version"] != "100" ||
		mr["divergence_id"] != miss["id"] || mr["expected_digest"] != field(miss, "source", "digest") ||
		mr["previous_digest"] != "" || mr["dry_run"] != false || mr["mode"] != "auto" || mr["approved_by"] != nil ||
		!reflect.DeepEqual(mr["after"], wantAfter) {
		t.Errorf("missing repair: %s %v %v", r.Key, r.Headers, mr)
	}
	if id := repair.ID("orders", "warehouse", "1", "100", "upsert", compare.Digest{}.String()); mr["id"] != id {
		t.Errorf("repair id %v, want the deterministic %s", mr["id"], id)
	}
	if dlq := h.outputs(h.cfg.Outputs.DLQ); len(dlq) != 0 {
		t.Errorf("DLQ records: %v", dlq)
	}
}

// A registry that is down, or refuses the output schemas, stops recon at
// start with one line that names the registry and what it refused.
func TestAvroOutputsFailAtStart(t *testing.T) {
	down := srfake.New()
	downURL := down.URL()
	down.Close()
	refusing := srfake.New()
	t.Cleanup(refusing.Close)
	refusing.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || !strings.Contains(r.URL.Path, "recon.divergences-value") {
			return false
		}
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(sr.ResponseError{ErrorCode: 409, Message: "Schema being registered is incompatible with an earlier schema"})
		return true
	})
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"unreachable", downURL, []string{"outputs.format avro: schema registry " + downURL, "recon.divergences-value", "connect"}},
		{"incompatible", refusing.URL(), []string{"registering dev.recon.Divergence under subject recon.divergences-value: Schema being registered is incompatible"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// No broker: the registry is checked before Kafka.
			p, err := New(context.Background(), avroConfig(t, "127.0.0.1:1", tc.url), Options{})
			if err == nil {
				p.Close()
				t.Fatal("New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			t.Log(err)
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}
