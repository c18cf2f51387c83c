package repair

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/state"
)

// prefixEncoder encodes the values of one topic by prefixing them, and
// refuses the value "bad", as an encoder refuses an event its schema lacks.
type prefixEncoder struct{ topic string }

func (e prefixEncoder) EncodeValue(topic string, value []byte) ([]byte, error) {
	if topic != e.topic {
		return value, nil
	}
	if string(value) == "bad" {
		return nil, errors.New("no schema for this")
	}
	return append([]byte("enc:"), value...), nil
}

var _ Encoder = prefixEncoder{}

func newEncodingPublisher(t *testing.T, seeds []state.OutboxRecord) (*Publisher, *state.Store, *kfake.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "out", "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b := store.NewBatch()
	for _, r := range seeds {
		b.AppendOutbox(r)
	}
	if err := store.Commit(b); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	p := NewPublisher(store, cl, NewPublisherMetrics(prometheus.NewRegistry(), store), log, PublisherOptions{
		MaxBackoff: 20 * time.Millisecond, ProduceTimeout: 2 * time.Second, Encoder: prefixEncoder{topic: "out"},
	})
	return p, store, c
}

// Values of the output topic leave encoded, keys and headers untouched; the
// DLQ's bytes leave as they are.
func TestPublisherEncodesValues(t *testing.T) {
	hdr := []state.Header{{Key: "recon-id", Value: []byte("1")}}
	p, store, c := newEncodingPublisher(t, []state.OutboxRecord{
		{Topic: "out", Key: []byte("k1"), Value: []byte(`{"a":1}`), Headers: hdr},
		{Topic: "dlq", Key: []byte("k2"), Value: []byte("raw \x00 bytes")},
		{Topic: "out", Key: []byte("k3"), Value: []byte(`{"a":3}`)},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := store.OutboxDepth(); n != 0 {
		t.Fatalf("outbox has %d records after the flush", n)
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("out", "dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got := map[string]*kgo.Record{}
	waitFor(t, 10*time.Second, "3 records", func() bool {
		pctx, c := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer c()
		rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got[string(r.Key)] = r })
		return len(got) == 3
	})
	for key, want := range map[string]string{"k1": `enc:{"a":1}`, "k2": "raw \x00 bytes", "k3": `enc:{"a":3}`} {
		if string(got[key].Value) != want {
			t.Errorf("%s: value %q, want %q", key, got[key].Value, want)
		}
	}
	if h := got["k1"].Headers; len(h) != 1 || h[0].Key != "recon-id" || string(h[0].Value) != "1" {
		t.Errorf("k1 headers %v, want recon-id=1", h)
	}
}

// A value the encoder refuses keeps its chunk in the outbox, counts as a
// failure, and leaves the breaker closed: the brokers are not at fault.
func TestPublisherKeepsRecordsItCannotEncode(t *testing.T) {
	p, store, _ := newEncodingPublisher(t, []state.OutboxRecord{
		{Topic: "out", Key: []byte("k1"), Value: []byte(`{"a":1}`)},
		{Topic: "out", Key: []byte("k2"), Value: []byte("bad")},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := p.Flush(ctx)
	if err == nil || !strings.Contains(err.Error(), "encoding outbox record") || !strings.Contains(err.Error(), "no schema for this") {
		t.Fatalf("Flush = %v, want the encoding error", err)
	}
	if n, _ := store.OutboxDepth(); n != 2 {
		t.Errorf("outbox has %d records, want both kept", n)
	}
	if s := p.Breaker().State.String(); s != "closed" {
		t.Errorf("breaker %s, want closed", s)
	}
	if n := testutil.ToFloat64(p.metrics.failures); n < 1 {
		t.Errorf("recon_publish_failures_total = %v, want the failed drains counted", n)
	}
}
