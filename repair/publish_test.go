package repair

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/recon-dev/recon/state"
)

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

// While the broker refuses produces, the breaker opens and the outbox keeps
// every record; once the broker is back, it drains and nothing is lost.
func TestPublisherKeepsOutboxThroughBrokerFailures(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The broker refuses every produce to the output topic until the fault is removed.
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "out", Err: kerr.NotEnoughReplicas, Count: -1})

	store := filledOutbox(t, 10)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordRetries(1), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	reg := prometheus.NewRegistry()
	m := NewPublisherMetrics(reg, store)
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	p := NewPublisher(store, cl, m, log, PublisherOptions{BreakerTimeout: 200 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, ProduceTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, 10*time.Second, "the breaker to open", func() bool { return p.Breaker().State.String() == "open" })
	if n, _ := store.OutboxDepth(); n != 10 {
		t.Fatalf("outbox has %d records while the broker fails, want all 10", n)
	}
	// Readiness is told since when the breaker has not been closed, and why.
	opened := p.Breaker()
	if opened.Since.IsZero() || opened.LastErr == nil {
		t.Fatalf("breaker status %+v: want since when it opened and the last failure", opened)
	}
	waitFor(t, 10*time.Second, "the breaker to half-open and open again", func() bool {
		return p.Breaker().State.String() == "half-open"
	})
	if b := p.Breaker(); !b.Since.Equal(opened.Since) {
		t.Errorf("going from open to half-open moved since from %v to %v: it is when the breaker left closed", opened.Since, b.Since)
	}
	fault.Remove()
	waitFor(t, 10*time.Second, "the outbox to drain", func() bool { n, _ := store.OutboxDepth(); return n == 0 })
	waitFor(t, 10*time.Second, "the breaker to close again", func() bool { return p.Breaker().State.String() == "closed" })
	if b := p.Breaker(); b.LastErr != nil || !b.Since.After(opened.Since) {
		t.Errorf("closed breaker status %+v: want no error, closed since after it opened (%v)", b, opened.Since)
	}

	readOut(t, c, 10)
}

// filledOutbox opens a store whose outbox holds n records for topic "out",
// keyed 0 to n-1.
func filledOutbox(t *testing.T, n int) *state.Store {
	t.Helper()
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b := store.NewBatch()
	for i := range n {
		b.AppendOutbox(state.OutboxRecord{Topic: "out", Key: []byte{byte(i)}, Value: []byte("v")})
	}
	if err := store.Commit(b); err != nil {
		t.Fatal(err)
	}
	return store
}

// readOut reads topic "out" of c from the start until it has seen n distinct
// keys, and returns how many times each came.
func readOut(t *testing.T, c *kfake.Cluster, n int) map[byte]int {
	t.Helper()
	rd, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got := map[byte]int{}
	waitFor(t, 10*time.Second, fmt.Sprintf("%d records", n), func() bool {
		pctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got[r.Key[0]]++ })
		return len(got) == n
	})
	return got
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
