package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/reconcile"
)

// polled is one poll's records, decoded, on their way to the apply stage.
type polled struct {
	items    []reconcile.Item
	advances []advance
	// caughtUp says the poll took everything the client had buffered.
	caughtUp bool
}

type advance struct {
	topic     string
	partition int32
	next      int64
	newest    time.Time // newest record timestamp
	// newestEvent is the newest change time (source.ts_ms) decoded.
	newestEvent time.Time
}

// Run polls until ctx is done or the handler fails. Two stages overlap: this
// goroutine polls and decodes batch N+1 while the apply stage folds batch N
// into state; a rebalance waits (in the revoke callback) until every batch
// polled for the partitions it takes away is durable. Run owns the apply
// stage and the end-offset lister and stops both before returning.
func (c *Consumer) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	listDone := make(chan struct{})
	go func() {
		defer close(listDone)
		c.listLoop(ctx)
	}()

	batches := make(chan *polled, 1)
	applyDone := make(chan struct{})
	go func() {
		defer close(applyDone)
		for b := range batches {
			if ctx.Err() == nil {
				err := c.apply(ctx, b)
				if err == nil && b.caughtUp && len(batches) == 0 {
					// Nothing more to fold for now: make it durable soon.
					err = c.handler.Checkpoint(ctx)
				}
				if err != nil && ctx.Err() == nil {
					cancel(err)
				}
			}
			c.finished()
		}
	}()

	c.pollLoop(ctx, batches)
	close(batches)
	<-applyDone
	<-listDone
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (c *Consumer) pollLoop(ctx context.Context, batches chan<- *polled) {
	for {
		if g := c.opts.Gate; g != nil && !g.Open() && !c.hold(ctx, g) {
			return
		}
		fetches := c.poll(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		c.noteFetches(fetches)
		parts := c.claim(fetches)
		if len(parts) == 0 {
			continue
		}
		b, ok := c.decodeParts(ctx, parts)
		if !ok { // ctx ended while a record waited for its schema
			c.finished()
			return
		}
		b.caughtUp = fetches.NumRecords() < c.opts.MaxPoll
		select {
		case batches <- b:
		case <-ctx.Done():
			c.finished()
			return
		}
	}
}

// poll polls up to MaxPoll records. With a gate, a poll waiting for input
// gives up once the gate closes: the sweeper filled the outbox, and no more
// input may come in until it drains.
func (c *Consumer) poll(ctx context.Context) kgo.Fetches {
	g := c.opts.Gate
	if g == nil {
		return c.client.PollRecords(ctx, c.opts.MaxPoll)
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-g.Closing():
			cancel()
		case <-done:
		}
	}()
	fetches := c.client.PollRecords(pctx, c.opts.MaxPoll)
	close(done)
	<-watched
	cancel()
	return fetches
}

// hold pauses fetching while the gate is closed, and reports whether ctx is
// still live. Nothing is polled meanwhile, and fetching stops too, so that the
// client buffers nothing: the records wait in Kafka, where consumer lag shows
// them. Heartbeats go on, and a rebalance meanwhile is handled as ever (the
// revoke callback does not need the poll loop), so the group keeps its member.
func (c *Consumer) hold(ctx context.Context, g Gate) bool {
	topics := make([]string, 0, len(c.routes))
	for t := range c.routes {
		topics = append(topics, t)
	}
	c.client.PauseFetchTopics(topics...)
	if m := c.opts.Metrics; m != nil {
		m.paused.Set(1)
	}
	c.log.Warn("consumption paused: the outbox is full; waiting for the publisher to drain it")
	start := time.Now()
	err := g.Wait(ctx)
	c.client.ResumeFetchTopics(topics...)
	if m := c.opts.Metrics; m != nil {
		m.paused.Set(0)
	}
	if err != nil {
		return false
	}
	c.log.Info("consumption resumed: the outbox drained", "paused_for", time.Since(start).Round(time.Millisecond))
	return true
}

// claim keeps the partitions this member still owns and counts the batch in
// flight, atomically with respect to a revoke, so a revoke either sees the
// batch in flight and waits for it, or the batch drops the partition.
func (c *Consumer) claim(fs kgo.Fetches) []kgo.FetchTopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []kgo.FetchTopicPartition
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 && c.owned[p.Topic][p.Partition] {
			parts = append(parts, p)
		}
	})
	if len(parts) > 0 {
		c.inflight++
	}
	return parts
}

func (c *Consumer) finished() {
	c.mu.Lock()
	c.inflight--
	c.drained.Broadcast()
	c.mu.Unlock()
}

func (c *Consumer) own(added map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, parts := range added {
		m := c.owned[topic]
		if m == nil {
			m = make(map[int32]bool)
			c.owned[topic] = m
		}
		for _, p := range parts {
			m[p] = true
		}
	}
}

// disown stops accepting records of the partitions, waits until every batch
// already polled is applied, and has the handler make it durable.
func (c *Consumer) disown(ctx context.Context, gone map[string][]int32) {
	c.mu.Lock()
	for topic, parts := range gone {
		for _, p := range parts {
			delete(c.owned[topic], p)
		}
	}
	for c.inflight > 0 {
		c.drained.Wait()
	}
	c.mu.Unlock()
	if err := c.handler.Flush(ctx); err != nil {
		c.log.Error("making the revoked partitions' state durable failed; the next owner replays from the last checkpoint", "err", err)
	}
	for topic, parts := range gone {
		for _, p := range parts {
			c.progress.revoke(topic, p)
		}
	}
}

// apply folds one batch, then lets the watermarks advance. Offsets reach
// Kafka later, once the handler has made them durable (MarkDurable).
func (c *Consumer) apply(ctx context.Context, b *polled) error {
	if err := c.handler.Apply(ctx, b.items); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("applying a batch of %d records: %w", len(b.items), err)
	}
	// A fetch's high watermark is not used for the watermark rule: the client
	// prefetches, so when it was true is unknown. The end-offset lister's
	// answers are stamped with when they were asked for.
	for _, a := range b.advances {
		c.progress.advanced(a.topic, a.partition, a.next, a.newest, a.newestEvent)
	}
	return nil
}

// decodeParts decodes the partitions of one poll in parallel: decoding is
// pure, and overlaps the apply stage's single writer. Records keep their
// partition order. ok is false when ctx ended while a record waited for its
// schema (see decodeWaiting); the batch is then incomplete and must be dropped.
func (c *Consumer) decodeParts(ctx context.Context, parts []kgo.FetchTopicPartition) (_ *polled, ok bool) {
	b := &polled{}
	var recs []*kgo.Record
	for _, p := range parts {
		recs = append(recs, p.Records...)
	}
	// Workers take equal chunks of the poll, not whole partitions: a poll
	// is often mostly one or two partitions, and would leave a core idle.
	b.items = make([]reconcile.Item, len(recs))
	const chunk = 256
	chunks := (len(recs) + chunk - 1) / chunk
	var (
		wg     sync.WaitGroup
		next   atomic.Int64
		failed atomic.Bool
	)
	work := func() {
		defer wg.Done()
		for {
			k := int(next.Add(1)) - 1
			if k >= chunks || failed.Load() {
				return
			}
			for j := k * chunk; j < min(len(recs), (k+1)*chunk); j++ {
				var err error
				if b.items[j], err = c.decodeWaiting(ctx, recs[j]); err != nil {
					failed.Store(true) // ctx is done: the batch is dropped
					return
				}
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), chunks)
	wg.Add(workers)
	for w := 1; w < workers; w++ {
		go work()
	}
	work() // this goroutine is one of the workers
	wg.Wait()
	if ctx.Err() != nil || failed.Load() {
		return nil, false
	}

	i := 0 // b.items[i] is the item of the record at hand
	for _, p := range parts {
		a := advance{topic: p.Topic, partition: p.Partition}
		for _, r := range p.Records {
			if r.Timestamp.After(a.newest) {
				a.newest = r.Timestamp
			}
			if ev := b.items[i].Event; ev != nil && ev.EventTime.After(a.newestEvent) {
				a.newestEvent = ev.EventTime
			}
			i++
		}
		last := p.Records[len(p.Records)-1]
		a.next = last.Offset + 1
		b.advances = append(b.advances, a)
	}
	return b, true
}

// ContextDecoder is a Decoder whose decoding may wait on I/O, such as
// fetching a writer schema from the schema registry; the consume loop passes
// its ctx so that shutdown need not wait for a request to time out.
type ContextDecoder interface {
	DecodeContext(ctx context.Context, key, value []byte, m Meta) (Decoded, error)
}

// UnavailableError is a record that could not be decoded because something
// it needs is out of reach for now: its writer schema, with the schema
// registry down. It is no DecodeError, since the record may be fine: the
// consume loop decodes it again rather than send it to the DLQ.
type UnavailableError struct {
	Err error
}

func (e *UnavailableError) Error() string { return "unavailable, to retry: " + e.Err.Error() }

func (e *UnavailableError) Unwrap() error { return e.Err }

// Backoff between decode attempts of a record whose schema is unavailable,
// unless Options say otherwise.
const (
	defaultRetryMin = 200 * time.Millisecond
	defaultRetryMax = 30 * time.Second
)

// decodeWaiting decodes r, and while that fails with an *UnavailableError it
// waits, with capped exponential backoff, and tries again: its partition
// stops there, so order is kept and no good record goes to the DLQ because
// the registry is down. Each retry is counted and logged. It returns an
// error only when ctx ends first.
func (c *Consumer) decodeWaiting(ctx context.Context, r *kgo.Record) (reconcile.Item, error) {
	wait := c.opts.RetryMin
	for attempt := 1; ; attempt++ {
		it, err := c.decode(ctx, r)
		if err == nil {
			if attempt > 1 {
				c.log.Info("decoding resumed", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempts", attempt)
			}
			return it, nil
		}
		if ctx.Err() != nil {
			return it, context.Cause(ctx)
		}
		if m := c.opts.Metrics; m != nil {
			route := c.routes[r.Topic]
			m.decodeRetries.WithLabelValues(route.Dataset, route.System).Inc()
		}
		c.log.Warn("cannot decode: schema unavailable; the partition waits and retries",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return it, context.Cause(ctx)
		case <-t.C:
		}
		wait = min(2*wait, c.opts.RetryMax)
	}
}
