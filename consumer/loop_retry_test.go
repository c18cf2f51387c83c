package consumer

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/compare"
)

const retryTopic = "pg.public.orders"

// decodeStage is a Consumer with only what the decode stage uses: routes,
// options, metrics and a logger writing to logs.
func decodeStage(t *testing.T, f *avroFixture, maxRecordBytes int) (*Consumer, *Metrics, *syncBuffer) {
	t.Helper()
	rules, err := compare.NewRules([]string{"id"}, nil, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry(), NewProgress(time.Now))
	logs := &syncBuffer{}
	c := &Consumer{
		routes: map[string]*Route{retryTopic: {Dataset: "orders", System: "postgres", Topic: retryTopic, Rules: rules,
			Decoder: NewDebeziumAvro(f.reg, compare.VersionSpec{Kind: compare.VersionLSN}, compare.VersionSpec{})}},
		opts: Options{MaxRecordBytes: maxRecordBytes, RetryMin: time.Millisecond, RetryMax: 8 * time.Millisecond, Metrics: m},
		log:  slog.New(slog.NewTextHandler(logs, nil)),
	}
	return c, m, logs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func partition(values ...[]byte) []kgo.FetchTopicPartition {
	p := kgo.FetchTopicPartition{Topic: retryTopic}
	for i, v := range values {
		p.Records = append(p.Records, &kgo.Record{Topic: retryTopic, Offset: int64(i), Key: []byte(`{"id":42}`), Value: v})
	}
	return []kgo.FetchTopicPartition{p}
}

// failFirst makes the registry answer 503 to its first n requests.
func failFirst(f *avroFixture, n int64) *atomic.Int64 {
	var seen atomic.Int64
	f.fake.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		if seen.Add(1) <= n {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	return &seen
}

// TestDecodeWaitsForRegistry: while the registry fails, the record is
// retried, not sent to the DLQ; once it answers, the record and those after
// it decode in order. The waits are counted and logged.
func TestDecodeWaitsForRegistry(t *testing.T) {
	f := newAvroFixture(t)
	c, m, logs := decodeStage(t, f, 1<<20)
	failFirst(f, 3)
	good := pgEnvelope(t, f, "u", nil, orderV1("paid"))
	b, ok := c.decodeParts(t.Context(), partition(good, wire(idUnknown, 0), good))
	if !ok {
		t.Fatal("decodeParts gave up")
	}
	if len(b.items) != 3 {
		t.Fatalf("%d items, want 3", len(b.items))
	}
	for i, it := range b.items {
		if it.Offset != int64(i) {
			t.Fatalf("item %d has offset %d: order lost", i, it.Offset)
		}
	}
	if it := b.items[0]; it.Reject != nil || it.Event == nil || it.Event.Row["status"].Text != "paid" {
		t.Fatalf("first record: event %+v, reject %+v; want it decoded once the registry answered", it.Event, it.Reject)
	}
	// An unknown id is an answer, not an outage: DLQ at once.
	if it := b.items[1]; it.Reject == nil || it.Reject.Reason != ReasonUnknownSchemaID {
		t.Fatalf("second record: reject %+v, want %s", it.Reject, ReasonUnknownSchemaID)
	}
	if it := b.items[2]; it.Event == nil {
		t.Fatalf("third record: reject %+v, want an event", it.Reject)
	}
	if n := testutil.ToFloat64(m.decodeRetries.WithLabelValues("orders", "postgres")); n != 3 {
		t.Errorf("recon_decode_retries_total = %v, want 3", n)
	}
	if n := testutil.ToFloat64(m.decodeErrors.WithLabelValues("orders", "postgres", ReasonUnknownSchemaID)); n != 1 {
		t.Errorf("decode errors unknown_schema_id = %v, want 1", n)
	}
	if out := logs.String(); strings.Count(out, "schema unavailable; the partition waits") != 3 || !strings.Contains(out, "decoding resumed") {
		t.Errorf("logs:\n%s\nwant three waits and a resume", out)
	}
}

// TestDecodeWaitStopsWithCtx: a record waiting for the registry does not
// hold shutdown up, and the incomplete batch is dropped.
func TestDecodeWaitStopsWithCtx(t *testing.T) {
	f := newAvroFixture(t)
	c, _, _ := decodeStage(t, f, 1<<20)
	seen := failFirst(f, 1<<30)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan bool)
	go func() {
		_, ok := c.decodeParts(ctx, partition(pgEnvelope(t, f, "u", nil, orderV1("paid"))))
		done <- ok
	}()
	for deadline := time.Now().Add(10 * time.Second); seen.Load() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("no retry within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if ok := <-done; ok {
		t.Fatal("decodeParts returned a batch after ctx ended")
	}
}

// TestDecodeRejectReasons: each kind of bad input reaches the DLQ with its
// own reason and the labelled decode-error metric.
func TestDecodeRejectReasons(t *testing.T) {
	f := newAvroFixture(t)
	c, m, _ := decodeStage(t, f, 600)
	good := pgEnvelope(t, f, "u", nil, orderV1("paid"))
	cases := []struct {
		value  []byte
		reason string
	}{
		{append([]byte{1}, good[1:]...), ReasonBadMagic},
		{wire(idUnknown, 0), ReasonUnknownSchemaID},
		{good[:len(good)-2], ReasonTruncated},
		{pgEnvelope(t, f, "x", nil, orderV1("paid")), ReasonUnknownOp},
		{append(good, make([]byte, 600)...), ReasonOversized},
	}
	values := make([][]byte, len(cases))
	for i, tc := range cases {
		values[i] = tc.value
	}
	parts := partition(values...)
	// A key and a row without the key field: nothing says which key it is.
	parts[0].Records = append(parts[0].Records, &kgo.Record{Topic: retryTopic, Offset: int64(len(cases)),
		Value: f.encode(t, idEnvV1, envelopeNative("pg.public.orders.Value", "d", nil, nil, pgSourceAvro(pgLSN)))})
	cases = append(cases, struct {
		value  []byte
		reason string
	}{nil, ReasonMissingKey})
	b, ok := c.decodeParts(t.Context(), parts)
	if !ok {
		t.Fatal("decodeParts gave up")
	}
	for i, tc := range cases {
		it := b.items[i]
		if it.Reject == nil || it.Reject.Reason != tc.reason {
			t.Errorf("record %d: reject %+v, want reason %s", i, it.Reject, tc.reason)
			continue
		}
		if n := testutil.ToFloat64(m.decodeErrors.WithLabelValues("orders", "postgres", tc.reason)); n != 1 {
			t.Errorf("decode errors %s = %v, want 1", tc.reason, n)
		}
	}
}
