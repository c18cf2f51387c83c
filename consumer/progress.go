package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Progress tracks how far recon has read each assigned partition, relative to
// the partition's high watermark. It answers the watermark rule of DESIGN §4:
// a window may fire only when every partition of the topic this instance reads
// was caught up at or after the deadline, or has delivered records at least a
// window newer than the source change.
type Progress struct {
	mu    sync.Mutex
	parts map[string]map[int32]*partProgress
	now   func() time.Time
}

type partProgress struct {
	next       int64     // next offset to read: everything before it is durably folded in
	end        int64     // newest known high watermark
	endAt      time.Time // when end was observed (conservatively: when it was asked for)
	caughtUpAt time.Time // newest instant at which next >= high watermark was known to hold
	newestTS   time.Time // newest record timestamp folded in
	// newestEvent is the newest change time (source.ts_ms, or the record
	// timestamp when a format has none) folded in.
	newestEvent time.Time
}

// NewProgress returns an empty tracker; now defaults to time.Now.
func NewProgress(now func() time.Time) *Progress {
	if now == nil {
		now = time.Now
	}
	return &Progress{parts: make(map[string]map[int32]*partProgress), now: now}
}

func (p *Progress) assign(topic string, partition int32, next int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.parts[topic]
	if m == nil {
		m = make(map[int32]*partProgress)
		p.parts[topic] = m
	}
	m[partition] = &partProgress{next: next, end: -1}
}

func (p *Progress) revoke(topic string, partition int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.parts[topic], partition)
}

// advanced records that everything before next is durably processed.
func (p *Progress) advanced(topic string, partition int32, next int64, newest, newestEvent time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.parts[topic][partition]
	if pp == nil {
		return
	}
	if next > pp.next {
		pp.next = next
	}
	if newest.After(pp.newestTS) {
		pp.newestTS = newest
	}
	if newestEvent.After(pp.newestEvent) {
		pp.newestEvent = newestEvent
	}
	if pp.end >= 0 && pp.next >= pp.end && pp.endAt.After(pp.caughtUpAt) {
		pp.caughtUpAt = pp.endAt
	}
}

// observeEnd records a high watermark known to hold at time at.
func (p *Progress) observeEnd(topic string, partition int32, end int64, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.parts[topic][partition]
	if pp == nil {
		return
	}
	if at.After(pp.endAt) || end > pp.end {
		pp.end, pp.endAt = end, at
	}
	if pp.next >= end && at.After(pp.caughtUpAt) {
		pp.caughtUpAt = at
	}
}

// CaughtUp implements reconcile.Progress.
func (p *Progress) CaughtUp(topic string, since, change time.Time, window time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	parts := p.parts[topic]
	if len(parts) == 0 {
		return false // not reading the topic at all: nothing can be concluded
	}
	for _, pp := range parts {
		if !pp.caughtUpAt.Before(since) {
			continue
		}
		// Read a window past the change by both clocks: the record
		// timestamps alone would mislead on a topic re-produced with fresh
		// timestamps, or written long after its changes happened (a
		// connector's backlog), and the change times alone where a format
		// carries none.
		reach := pp.newestTS
		if pp.newestEvent.Before(reach) {
			reach = pp.newestEvent
		}
		if !change.IsZero() && !reach.Before(change.Add(window)) {
			continue
		}
		return false
	}
	return true
}

func (p *Progress) topics() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.parts))
	for t, m := range p.parts {
		if len(m) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// listEnds asks the brokers for the end offsets of every assigned topic. Idle
// partitions produce no fetch responses, so this is how they stay "caught up".
func (p *Progress) listEnds(ctx context.Context, adm *kadm.Client) error {
	topics := p.topics()
	if len(topics) == 0 {
		return nil
	}
	asked := p.now()
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return err
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			p.observeEnd(o.Topic, o.Partition, o.Offset, asked)
		}
	})
	return ends.Error()
}

// Describe and Collect export consumer lag and watermark age per partition.
var (
	lagDesc = prometheus.NewDesc("recon_consumer_lag_records",
		"Records between recon's durable position and the partition's high watermark.", []string{"topic", "partition"}, nil)
	ageDesc = prometheus.NewDesc("recon_watermark_age_seconds",
		"Seconds since recon was last known to be caught up with the partition.", []string{"topic", "partition"}, nil)
)

func (p *Progress) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagDesc
	ch <- ageDesc
}

func (p *Progress) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for topic, m := range p.parts {
		for part, pp := range m {
			ps := itoa(part)
			if pp.end >= 0 {
				ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(max(pp.end-pp.next, 0)), topic, ps)
			}
			if !pp.caughtUpAt.IsZero() {
				ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, now.Sub(pp.caughtUpAt).Seconds(), topic, ps)
			}
		}
	}
}
