package sim

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// traceLen bounds each key's trace: enough to see what led to a verdict.
const traceLen = 48

// timelineLen is how many lines of a key's story a report shows.
const timelineLen = 16

// trace keeps the latest changes of every key on both sides, so that a
// report can show what happened to a key recon judged wrongly.
type trace struct {
	start time.Time

	mu   sync.Mutex
	keys map[int64][]traceEntry
}

type traceEntry struct {
	at   time.Time
	what string
}

func newTrace(start time.Time) *trace {
	return &trace{start: start, keys: make(map[int64][]traceEntry)}
}

func (t *trace) add(id int64, at time.Time, format string, args ...any) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	es := append(t.keys[id], traceEntry{at: at, what: fmt.Sprintf(format, args...)})
	if len(es) > traceLen {
		es = slices.Delete(es, 0, len(es)-traceLen)
	}
	t.keys[id] = es
}

// timeline renders a key's trace merged with recon's verdicts on it, times
// relative to the start of the run: the lines leading up to the key's first
// verdict of kind focus ("" for its last line), and a few after.
func (t *trace) timeline(id int64, verdicts []Verdict, resolvedAt map[string]time.Time, focus string) []string {
	t.mu.Lock()
	es := slices.Clone(t.keys[id])
	t.mu.Unlock()
	var since time.Time // verdicts older than the trace would have no context
	if len(es) > 0 {
		since = es[0].at
	}
	var focusAt time.Time
	for _, v := range verdicts {
		if v.KeyID != id || v.Detected.Before(since) {
			continue
		}
		if focus != "" && v.Kind == focus && focusAt.IsZero() {
			focusAt = v.Detected
		}
		es = append(es, traceEntry{at: v.Detected, what: fmt.Sprintf("recon: %s opened (window from %s)", v.Kind, t.rel(v.OpenedAt))})
		if at, ok := resolvedAt[v.ID]; ok {
			es = append(es, traceEntry{at: at, what: fmt.Sprintf("recon: %s resolved", v.Kind)})
		}
	}
	slices.SortStableFunc(es, func(a, b traceEntry) int { return a.at.Compare(b.at) })
	end := len(es)
	if !focusAt.IsZero() {
		i, _ := slices.BinarySearchFunc(es, focusAt, func(e traceEntry, at time.Time) int { return e.at.Compare(at) })
		end = min(len(es), i+4)
	}
	es = es[max(0, end-timelineLen):end]
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%9s  %s", t.rel(e.at), e.what)
	}
	return out
}

func (t *trace) rel(at time.Time) string {
	return fmt.Sprintf("t=%.3fs", at.Sub(t.start).Seconds())
}
