package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Check is one readiness check: what it looks at, whether it passes, and
// what an operator needs to know about it.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// String renders a check as /readyz does: "ok NAME[: detail]" or
// "fail NAME: detail".
func (c Check) String() string {
	word := "ok"
	if !c.OK {
		word = "fail"
	}
	if c.Detail == "" {
		return word + " " + c.Name
	}
	return word + " " + c.Name + ": " + c.Detail
}

// Checks is a readiness report.
type Checks []Check

// OK reports whether every check passes.
func (cs Checks) OK() bool {
	return !slices.ContainsFunc(cs, func(c Check) bool { return !c.OK })
}

// Failing returns the checks that fail.
func (cs Checks) Failing() Checks {
	var out Checks
	for _, c := range cs {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// healthFresh is how long a failure counts in readiness with nothing newer
// to confirm or clear it. The clients retry a sick broker or partition
// far more often than this, so a fault that lasts stays reported; one that
// ended on an idle partition or connection stops being reported after it.
const healthFresh = 10 * time.Second

// Readiness runs every readiness check: the state store is open, the
// consumer is a member of its group, the brokers answer, fetches succeed,
// the output breaker is closed, and what waits in the outbox. Each failing
// check says what is wrong and since when.
func (p *Pipeline) Readiness() Checks {
	now := p.opts.Now()
	var cs Checks
	if p.store == nil {
		return Checks{{Name: "state", Detail: "the state store is closed"}}
	}
	cs = append(cs, Check{Name: "state", OK: true})

	if p.consumer == nil {
		return append(cs, Check{Name: "consumer", Detail: "closed"})
	}
	group := p.cfg.Kafka.Group
	switch ge, failing := p.consumer.GroupError(healthFresh); {
	case failing:
		cs = append(cs, Check{Name: "consumer", Detail: fmt.Sprintf("group %s failing since %s: %v", group, stamp(ge.Since, now), ge.Err)})
	case p.consumer.Joined():
		cs = append(cs, Check{Name: "consumer", OK: true,
			Detail: fmt.Sprintf("member of group %s, %d partitions assigned", group, p.consumer.Owned())})
	default:
		cs = append(cs, Check{Name: "consumer", Detail: fmt.Sprintf("not a member of group %s yet: joining", group)})
	}

	if down := p.kafka.failing(now, healthFresh); len(down) > 0 {
		cs = append(cs, Check{Name: "kafka", Detail: strings.Join(down, "; ")})
	} else {
		cs = append(cs, Check{Name: "kafka", OK: true, Detail: "brokers answering"})
	}

	if fes := p.consumer.FetchErrors(healthFresh); len(fes) > 0 {
		parts := make([]string, len(fes))
		for i, fe := range fes {
			parts[i] = fmt.Sprintf("%s[%d] failing since %s: %v", fe.Topic, fe.Partition, stamp(fe.Since, now), fe.Err)
		}
		cs = append(cs, Check{Name: "fetch", Detail: strings.Join(parts, "; ")})
	} else {
		cs = append(cs, Check{Name: "fetch", OK: true})
	}

	records, bytes := p.store.OutboxDepth()
	waiting := fmt.Sprintf("%d records (%d bytes) wait in the outbox", records, bytes)
	b := p.publisher.Breaker()
	switch b.State {
	case gobreaker.StateClosed:
		cs = append(cs, Check{Name: "breaker", OK: true, Detail: "closed"})
	default:
		d := fmt.Sprintf("%s, not closed since %s", b.State, stamp(b.Since, now))
		if b.State == gobreaker.StateHalfOpen {
			d = fmt.Sprintf("half-open (trying the brokers again), not closed since %s", stamp(b.Since, now))
		}
		if b.LastErr != nil {
			d += ": " + b.LastErr.Error()
		}
		cs = append(cs, Check{Name: "breaker", Detail: d + "; " + waiting})
	}
	switch held, since := p.gateHeld(); {
	case p.gate == nil:
		cs = append(cs, Check{Name: "outbox", OK: true, Detail: waiting})
	case held:
		cs = append(cs, Check{Name: "outbox", Detail: fmt.Sprintf("full since %s: %s, bound %d bytes; input paused and windows held until the publisher drains it to 90%%",
			stamp(since, now), waiting, p.gate.Max())})
	default:
		cs = append(cs, Check{Name: "outbox", OK: true, Detail: fmt.Sprintf("%s, bound %d bytes", waiting, p.gate.Max())})
	}
	return cs
}

func (p *Pipeline) gateHeld() (bool, time.Time) {
	if p.gate == nil {
		return false, time.Time{}
	}
	return p.gate.Held()
}

// stamp renders an instant for an operator: when, and how long ago.
func stamp(t, now time.Time) string {
	if t.IsZero() {
		return "start"
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), now.Sub(t).Round(time.Second))
}

// kafkaHealth follows, from both clients' hooks, whether each broker address
// answers. An address fails from the first failed dial or request after its
// last success, until a request succeeds again or healthFresh passes with no
// new failure (the clients stopped asking it, as they do with a seed once
// they know the cluster).
type kafkaHealth struct {
	now func() time.Time

	mu    sync.Mutex
	addrs map[hostPort]*addrHealth // by address: a seed and the broker it turns out to be are one
}

type hostPort struct {
	host string
	port int32
}

type addrHealth struct {
	addr string

	failingSince time.Time // zero while the address answers
	lastFailure  time.Time
	err          error
}

var (
	_ kgo.HookBrokerConnect = (*kafkaHealth)(nil)
	_ kgo.HookBrokerE2E     = (*kafkaHealth)(nil)
)

func newKafkaHealth(now func() time.Time) *kafkaHealth {
	return &kafkaHealth{now: now, addrs: make(map[hostPort]*addrHealth)}
}

func (h *kafkaHealth) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	h.note(meta, err)
}

func (h *kafkaHealth) OnBrokerE2E(meta kgo.BrokerMetadata, _ int16, e2e kgo.BrokerE2E) {
	h.note(meta, e2e.Err())
}

func (h *kafkaHealth) note(meta kgo.BrokerMetadata, err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, net.ErrClosed) {
		return // our own doing (a cancelled request, a connection the client closed), not the broker's
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	// Every request passes here: the address is rendered once per broker.
	hp := hostPort{meta.Host, meta.Port}
	a := h.addrs[hp]
	if a == nil {
		a = &addrHealth{addr: net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))}
		h.addrs[hp] = a
	}
	if err == nil {
		a.failingSince, a.err = time.Time{}, nil
		return
	}
	if a.failingSince.IsZero() {
		a.failingSince = now
	}
	a.lastFailure, a.err = now, err
}

// failing describes the addresses that fail at now, sorted.
func (h *kafkaHealth) failing(now time.Time, fresh time.Duration) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, a := range h.addrs {
		if a.failingSince.IsZero() || now.Sub(a.lastFailure) > fresh {
			continue
		}
		out = append(out, fmt.Sprintf("%s unreachable since %s: %v", a.addr, stamp(a.failingSince, now), a.err))
	}
	slices.Sort(out)
	return out
}
