package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// tail reads every partition of one topic from the start, without a group,
// and remembers how far it got so that the end of a run can wait until it
// has read everything recon published.
type tail struct {
	cl    *kgo.Client
	topic string
	// events, if set, decodes recon's Avro events into their JSON form.
	events *avroEvents

	mu   sync.Mutex
	next map[int32]int64
}

func newTail(broker, topic string, events *avroEvents) (*tail, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(broker),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// A long poll returns as soon as records arrive; this only bounds
		// how late an idle fetch notices its context ended.
		kgo.FetchMaxWait(250*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("building the %s reader: %w", topic, err)
	}
	return &tail{cl: cl, topic: topic, events: events, next: make(map[int32]int64)}, nil
}

// run hands every record to handle, in partition order, until ctx is done.
func (t *tail) run(ctx context.Context, handle func(context.Context, *kgo.Record)) {
	for {
		fs := t.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			handle(ctx, r)
			t.mu.Lock()
			t.next[r.Partition] = r.Offset + 1
			t.mu.Unlock()
		})
	}
}

// caughtUp reports whether every record of the topic was handled.
func (t *tail) caughtUp(ctx context.Context, adm *kadm.Client) (bool, error) {
	ends, err := adm.ListEndOffsets(ctx, t.topic)
	if err != nil {
		return false, err
	}
	if err := ends.Error(); err != nil {
		return false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	done := true
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > t.next[o.Partition] {
			done = false
		}
	})
	return done, nil
}

func (t *tail) close() { t.cl.Close() }

// decodeEvent reads the JSON form of one of recon's events into v.
func (t *tail) decodeEvent(ctx context.Context, r *kgo.Record, v any) error {
	b := r.Value
	if t.events != nil {
		var err error
		if b, err = t.events.json(ctx, b); err != nil {
			return fmt.Errorf("avro event: %w", err)
		}
	}
	return decodeJSON(b, v)
}

func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// divergenceEvent is the part of recon's divergence event the observer reads.
type divergenceEvent struct {
	ID         string         `json:"id"`
	Event      string         `json:"event"`
	Kind       string         `json:"kind"`
	Key        map[string]any `json:"key"`
	OpenedAt   time.Time      `json:"opened_at"`
	DetectedAt time.Time      `json:"detected_at"`
	ResolvedAt *time.Time     `json:"resolved_at"`
	WindowMS   int64          `json:"window_ms"`
	Rationale  string         `json:"rationale"`

	keyID int64
}

// Observer reads recon's divergence events.
type Observer struct {
	*tail

	mu         sync.Mutex
	opened     map[string]divergenceEvent // by divergence id
	order      []string                   // ids in the order they were opened
	resolved   map[string]time.Time
	duplicates int // events read again with an id already seen
	bad        []string
}

func newObserver(broker, topic string, events *avroEvents) (*Observer, error) {
	t, err := newTail(broker, topic, events)
	if err != nil {
		return nil, err
	}
	return &Observer{tail: t, opened: make(map[string]divergenceEvent), resolved: make(map[string]time.Time)}, nil
}

func (o *Observer) run(ctx context.Context) { o.tail.run(ctx, o.handle) }

func (o *Observer) handle(ctx context.Context, r *kgo.Record) {
	var ev divergenceEvent
	err := o.decodeEvent(ctx, r, &ev)
	if err == nil {
		ev.keyID, err = keyID(ev.Key)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.bad = append(o.bad, fmt.Sprintf("offset %d: %v", r.Offset, err))
		return
	}
	switch ev.Event {
	case "opened":
		if _, dup := o.opened[ev.ID]; dup {
			o.duplicates++
			return
		}
		o.opened[ev.ID] = ev
		o.order = append(o.order, ev.ID)
	case "resolved":
		if _, dup := o.resolved[ev.ID]; dup {
			o.duplicates++
			return
		}
		at := ev.DetectedAt
		if ev.ResolvedAt != nil {
			at = *ev.ResolvedAt
		}
		o.resolved[ev.ID] = at
	default:
		o.bad = append(o.bad, fmt.Sprintf("offset %d: unknown event %q", r.Offset, ev.Event))
	}
}

// counts returns how many divergences were opened and resolved so far.
func (o *Observer) counts() (opened, resolved int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.opened), len(o.resolved)
}

// openedEvents returns the opened events in the order they were read.
func (o *Observer) openedEvents() []divergenceEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]divergenceEvent, len(o.order))
	for i, id := range o.order {
		out[i] = o.opened[id]
	}
	return out
}

// isResolved reports whether the divergence id was resolved.
func (o *Observer) isResolved(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.resolved[id]
	return ok
}

// keyID reads the order id from an event's key, {"id": 42}.
func keyID(key map[string]any) (int64, error) {
	n, ok := key["id"].(json.Number)
	if !ok {
		return 0, fmt.Errorf("key %v: want {\"id\": <integer>}", key)
	}
	return strconv.ParseInt(string(n), 10, 64)
}

// repairEvent is the part of recon's repair event a downstream repair
// consumer needs. It is read into the simulator's own type, as a consumer
// that does not import recon would.
type repairEvent struct {
	ID             string         `json:"id"`
	DivergenceID   string         `json:"divergence_id"`
	Key            map[string]any `json:"key"`
	Action         string         `json:"action"`
	Kind           string         `json:"kind"`
	SourceVersion  string         `json:"source_version"`
	PreviousDigest string         `json:"previous_digest"`
	After          map[string]any `json:"after"`
	DryRun         bool           `json:"dry_run"`
}

func (e repairEvent) id() (int64, error) { return keyID(e.Key) }

// row reads after, the source row in the replica's column names with values
// in recon's normalized text (decimals "12.50", RFC 3339 timestamps). The
// replicator's own columns are filled as for any write it makes.
func (e repairEvent) row(now time.Time) (Row, error) {
	a := e.After
	var errs []error
	str := func(col string) string {
		s, ok := a[col].(string)
		if !ok {
			errs = append(errs, fmt.Errorf("column %s: want a string, got %T", col, a[col]))
		}
		return s
	}
	num := func(col string, bits int) int64 {
		n, ok := a[col].(json.Number)
		if !ok {
			errs = append(errs, fmt.Errorf("column %s: want an integer, got %T", col, a[col]))
			return 0
		}
		v, err := strconv.ParseInt(string(n), 10, bits)
		if err != nil {
			errs = append(errs, fmt.Errorf("column %s: %w", col, err))
		}
		return v
	}
	r := Row{LoadedAt: micros(now)}
	r.ID = num("order_id", 64)
	r.Customer = str("customer")
	r.Status = str("status")
	r.Quantity = int32(num("quantity", 32))
	amount, err := parseAmount(str("amount"))
	errs = append(errs, err)
	r.Amount = amount
	created, err := time.Parse(time.RFC3339Nano, str("created_at"))
	errs = append(errs, err)
	r.CreatedAt = micros(created)
	r.UpdatedAt = micros(now) // updated_at is not compared, so recon does not send it
	if n, ok := a["note"]; ok && n != nil {
		s := str("note")
		r.Note = &s
	}
	if r.SrcLSN, err = strconv.ParseUint(e.SourceVersion, 10, 64); err != nil {
		errs = append(errs, fmt.Errorf("source_version: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return Row{}, fmt.Errorf("repair %s: %w", e.ID, err)
	}
	return r, nil
}

// RepairConsumer applies recon's published repairs to the replica, once per
// repair id, and only while the replica still holds the row recon saw.
type RepairConsumer struct {
	*tail
	replica *Replica
	digest  func(Row) (string, error)

	mu                  sync.Mutex
	seen                map[string]bool
	divergences         map[string]bool // divergence ids the repairs read name
	published           int             // distinct repairs read
	duplicates, applied int
	skipped, dryRun     int
	failed              []string
}

func newRepairConsumer(broker, topic string, events *avroEvents, replica *Replica, digest func(Row) (string, error)) (*RepairConsumer, error) {
	t, err := newTail(broker, topic, events)
	if err != nil {
		return nil, err
	}
	return &RepairConsumer{tail: t, replica: replica, digest: digest, seen: make(map[string]bool), divergences: make(map[string]bool)}, nil
}

func (c *RepairConsumer) run(ctx context.Context) { c.tail.run(ctx, c.handle) }

func (c *RepairConsumer) handle(ctx context.Context, r *kgo.Record) {
	var ev repairEvent
	err := c.decodeEvent(ctx, r, &ev)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		c.failed = append(c.failed, fmt.Sprintf("offset %d: %v", r.Offset, err))
		return
	case c.seen[ev.ID]:
		c.duplicates++ // deterministic ids make a redelivered repair harmless
		return
	}
	c.seen[ev.ID] = true
	c.divergences[ev.DivergenceID] = true
	c.published++
	if ev.DryRun {
		c.dryRun++
		return
	}
	out, err := c.replica.applyRepair(ev, c.digest, time.Now())
	switch {
	case err != nil:
		c.failed = append(c.failed, err.Error())
	case out == repairSkipped:
		c.skipped++
	default:
		c.applied++
	}
}

// dlqReader counts the input records recon dead-lettered. The simulator's
// records are all valid, so any of them is a finding.
type dlqReader struct {
	*tail

	mu      sync.Mutex
	reasons []string
}

func newDLQReader(broker, topic string) (*dlqReader, error) {
	t, err := newTail(broker, topic, nil) // the DLQ keeps the input's bytes
	if err != nil {
		return nil, err
	}
	return &dlqReader{tail: t}, nil
}

func (d *dlqReader) run(ctx context.Context) { d.tail.run(ctx, d.handle) }

func (d *dlqReader) handle(_ context.Context, r *kgo.Record) {
	why, from := "", ""
	for _, h := range r.Headers {
		switch h.Key {
		case "recon-error":
			why = string(h.Value)
		case "recon-source-topic":
			from = string(h.Value)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reasons = append(d.reasons, fmt.Sprintf("%s key %s: %s", from, r.Key, why))
}

func (d *dlqReader) records() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.reasons...)
}

// RepairCounts is what the repair consumer did.
type RepairCounts struct {
	Published, Duplicates, Applied, Skipped, DryRun int
	Failed                                          []string
}

func (c *RepairConsumer) counts() RepairCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return RepairCounts{Published: c.published, Duplicates: c.duplicates, Applied: c.applied,
		Skipped: c.skipped, DryRun: c.dryRun, Failed: append([]string(nil), c.failed...)}
}

// repaired reports whether a repair of divergence id was read.
func (c *RepairConsumer) repaired(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.divergences[id]
}
