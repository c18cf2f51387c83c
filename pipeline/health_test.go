package pipeline

import (
	"context"
	"net"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestCheckLines(t *testing.T) {
	cs := Checks{
		{Name: "state", OK: true},
		{Name: "kafka", OK: true, Detail: "brokers answering"},
		{Name: "breaker", Detail: "open, not closed since start"},
	}
	var got []string
	for _, c := range cs {
		got = append(got, c.String())
	}
	want := []string{"ok state", "ok kafka: brokers answering", "fail breaker: open, not closed since start"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
	if cs.OK() || len(cs.Failing()) != 1 || cs.Failing()[0].Name != "breaker" {
		t.Errorf("OK %v, failing %v: want not OK, the breaker failing", cs.OK(), cs.Failing())
	}
	if !cs[:2].OK() {
		t.Error("checks that all pass must be OK")
	}
}

// Each row feeds the hooks in order and says what readiness must conclude.
func TestKafkaHealth(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	refused := syscall.ECONNREFUSED
	type event struct {
		at      time.Duration
		host    string
		err     error
		connect bool // through OnBrokerConnect rather than OnBrokerE2E
	}
	for _, tc := range []struct {
		name   string
		events []event
		at     time.Duration
		want   []string
	}{
		{"no request yet: nothing known to fail", nil, 0, nil},
		{"answering", []event{{0, "a", nil, false}}, time.Second, nil},
		{"a failed dial fails the address from then on",
			[]event{{0, "a", nil, false}, {time.Second, "a", refused, true}, {2 * time.Second, "a", refused, true}}, 3 * time.Second,
			[]string{"a:9092 unreachable since 2026-01-02T03:04:06Z (2s ago): connection refused"}},
		{"a success clears it",
			[]event{{0, "a", refused, true}, {time.Second, "a", nil, false}}, 2 * time.Second, nil},
		{"only the failing address is named",
			[]event{{0, "a", nil, false}, {0, "b", refused, false}}, time.Second,
			[]string{"b:9092 unreachable since 2026-01-02T03:04:05Z (1s ago): connection refused"}},
		{"a failure nothing confirms for healthFresh is forgotten (a seed no longer asked)",
			[]event{{0, "a", refused, true}}, healthFresh + time.Second, nil},
		{"our own cancellations say nothing of the broker",
			[]event{{0, "a", context.Canceled, false}, {0, "a", kgo.ErrClientClosed, false}, {0, "a", net.ErrClosed, false}}, time.Second, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var now time.Time
			h := newKafkaHealth(func() time.Time { return now })
			for _, e := range tc.events {
				now = t0.Add(e.at)
				meta := kgo.BrokerMetadata{Host: e.host, Port: 9092}
				if e.connect {
					h.OnBrokerConnect(meta, 0, nil, e.err)
				} else {
					h.OnBrokerE2E(meta, 0, kgo.BrokerE2E{ReadErr: e.err})
				}
			}
			got := h.failing(t0.Add(tc.at), healthFresh)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("failing %q, want %q", got, tc.want)
			}
		})
	}
}
