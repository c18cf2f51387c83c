package repair

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/recon-dev/recon/state"
)

// stopRig is a broker that holds produce requests until release is closed
// (every one, or only the first), a store whose outbox holds n records for
// topic "out", and a publisher over both.
type stopRig struct {
	c       *kfake.Cluster
	store   *state.Store
	p       *Publisher
	held    atomic.Int32
	release chan struct{}
	once    sync.Once
}

// answer lets the broker answer the produce requests it holds.
func (r *stopRig) answer() { r.once.Do(func() { close(r.release) }) }

func newStopRig(t *testing.T, n int, holdEvery bool, opts PublisherOptions) *stopRig {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	r := &stopRig{c: c, release: make(chan struct{})}
	t.Cleanup(r.answer) // a failed test must not leave the broker's close waiting
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if holdEvery {
			c.KeepControl()
		}
		r.held.Add(1)
		c.SleepControl(func() { <-r.release })
		return nil, nil, false
	})
	r.store = filledOutbox(t, n)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	r.p = NewPublisher(r.store, cl, NewPublisherMetrics(prometheus.NewRegistry(), r.store), slog.New(slog.DiscardHandler), opts)
	return r
}

// stopMidChunk runs the publisher until the broker holds a chunk, then stops it.
func (r *stopRig) stopMidChunk(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.p.Run(ctx) }()
	waitFor(t, 10*time.Second, "a chunk held by the broker", func() bool { return r.held.Load() > 0 })
	cancel()
	<-done
}

// publishedOnce asserts that "out" holds each of the n records exactly once.
func (r *stopRig) publishedOnce(t *testing.T, n int) {
	t.Helper()
	for k, times := range readOut(t, r.c, n) {
		if times != 1 {
			t.Errorf("record %d published %d times, want once", k, times)
		}
	}
}

// Stopping the publisher while a chunk is in the broker's hands neither drops
// nor double-handles outbox records: the chunk stays in the outbox until
// Kafka acknowledges it, a flush during that time does not send the same
// records again beside it, and once the broker answers every record is
// deleted once and was published once.
func TestPublisherStoppedMidChunk(t *testing.T) {
	const n = 10
	r := newStopRig(t, n, true, PublisherOptions{Chunk: 4, ProduceTimeout: time.Minute, MaxBackoff: 20 * time.Millisecond})
	r.stopMidChunk(t)
	if depth, _ := r.store.OutboxDepth(); depth != n {
		t.Fatalf("outbox holds %d records while the first chunk is unacknowledged, want all %d", depth, n)
	}

	// A bounded flush while the chunk is still held gives up without
	// sending its records a second time.
	fctx, fcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := r.p.Flush(fctx)
	fcancel()
	if err == nil {
		t.Fatal("flush succeeded while the broker held a chunk")
	}
	if got := r.held.Load(); got != 1 {
		t.Fatalf("%d produce requests reached the broker, want only the held one", got)
	}

	r.answer()
	fctx, fcancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer fcancel()
	if err := r.p.Flush(fctx); err != nil {
		t.Fatalf("flush after the broker answered: %v", err)
	}
	if depth, _ := r.store.OutboxDepth(); depth != 0 {
		t.Fatalf("outbox holds %d records after the flush, want 0", depth)
	}
	r.publishedOnce(t, n)
}

// A graceful stop with a chunk in flight: the shutdown flush, shorter than
// the breaker's open timeout, waits for that chunk's answer and then
// publishes the rest. Stopping Run is not a broker failure, and neither is
// the wait, so the breaker stays closed (it used to open on the flush's
// retries and leave the outbox for the next start).
func TestShutdownFlushWaitsForTheChunkInFlight(t *testing.T) {
	const n = 10
	// Production's breaker timeout (5s) against a 2s flush; the broker
	// holds the first produce only.
	r := newStopRig(t, n, false, PublisherOptions{Chunk: 4, MaxBackoff: 10 * time.Millisecond})
	r.stopMidChunk(t)

	// The broker answers a while into the flush, as a busy one would.
	answer := time.AfterFunc(300*time.Millisecond, r.answer)
	defer answer.Stop()
	fctx, fcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer fcancel()
	if err := r.p.Flush(fctx); err != nil {
		t.Fatalf("shutdown flush: %v (breaker %v)", err, r.p.Breaker().State)
	}
	if st := r.p.Breaker(); st.State != gobreaker.StateClosed {
		t.Fatalf("breaker %v after a stop and a flush on a healthy broker, want closed (last error %v)", st.State, st.LastErr)
	}
	if depth, _ := r.store.OutboxDepth(); depth != 0 {
		t.Fatalf("outbox holds %d records after the flush, want 0", depth)
	}
	if f := testutil.ToFloat64(r.p.metrics.failures); f != 0 {
		t.Fatalf("recon_publish_failures_total %v after a stop and a flush on a healthy broker, want 0", f)
	}
	r.publishedOnce(t, n)
}
