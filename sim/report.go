package sim

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recon-dev/recon/compare"
)

// KindCount compares what was injected with what recon detected, for one kind.
type KindCount struct {
	Kind     compare.DivergenceKind
	Injected int
	Detected int // injected keys recon flagged with this kind
}

// Verdict is one divergence recon opened, as the report lists it.
type Verdict struct {
	ID       string
	KeyID    int64
	Kind     string
	Expected string // the kind injected into the key; "" when none was
	OpenedAt time.Time
	Detected time.Time
	Resolved bool
	LateCopy bool // the simulator copied a change of the key later than the window
}

func (v Verdict) String() string {
	exp := v.Expected
	if exp == "" {
		exp = "nothing"
	}
	late := ""
	if v.LateCopy {
		late = " (the simulator copied this key later than the window: not recon's fault)"
	}
	return fmt.Sprintf("key %d: %s opened at %s (window start), detected %s, injected %s, resolved %v%s",
		v.KeyID, v.Kind, v.OpenedAt.Format("15:04:05.000"), v.Detected.Format("15:04:05.000"), exp, v.Resolved, late)
}

// Timeline is one key's recent changes on both sides and recon's verdicts.
type Timeline struct {
	Title string
	Lines []string
}

// Report is the outcome of a run: the ground truth against recon's verdicts.
// A mismatch is a result, not an error.
type Report struct {
	Options Options

	Kinds          []KindCount
	FalsePositives []Verdict // verdicts on keys given no fault, or of the wrong kind
	Undetected     []string  // injected faults recon never flagged, "key 42: lagging"
	Unresolved     []Verdict // verdicts never resolved
	// Unrepaired are divergences no repair event named: every kind is
	// repaired at once in the demo, so each is a lost repair.
	Unrepaired []Verdict
	Opened     int // distinct divergences opened
	Resolved   int
	// Reopened counts further verdicts of the injected kind on an already
	// flagged key: a second id for one injected divergence, a duplicate
	// detection (a crash that made recon judge a key twice would show here).
	Reopened int
	// DuplicateIDs counts divergence events read again with an id already
	// seen: redeliveries (an outbox chunk published again after a crash),
	// harmless because the id is the same.
	DuplicateIDs int
	BadEvents    []string

	Repairs RepairCounts
	// DeadLettered lists the simulator's records recon sent to its DLQ.
	DeadLettered []string

	// Timelines tell what happened to the first keys recon judged wrongly.
	Timelines []Timeline

	KeysTotal     int
	KeysConverged int
	Diverged      []string // keys whose replica row still differs, first few

	DetectionP50, DetectionP99 time.Duration // verdict time minus window expiry

	Inserts, Updates, Deletes int
	TargetWrites              int
	NoiseDupSource            int
	NoiseDupTarget            int
	NoiseRedelivered          int
	NoiseSlow                 int

	// LateCopies counts keys the simulator, falling behind, copied into
	// Kafka a window or more after their source change; MaxCopyDelay is the
	// longest such delay, broker to broker.
	LateCopies   int
	MaxCopyDelay time.Duration

	// Chaos is what the supervisor did, in a chaos run.
	Chaos *ChaosCounts
	// Memory is the process's memory over the run (recon, the embedded
	// broker and the simulator share it).
	Memory Memory

	Settled  bool // recon went quiet with everything resolved before the settle timeout
	Workload time.Duration
	Settle   time.Duration
	Wall     time.Duration
}

// SourceChanges is how many changes the source made.
func (r *Report) SourceChanges() int { return r.Inserts + r.Updates + r.Deletes }

func (r *Report) injected() (n int) {
	for _, k := range r.Kinds {
		n += k.Injected
	}
	return n
}

func (r *Report) detected() (n int) {
	for _, k := range r.Kinds {
		n += k.Detected
	}
	return n
}

// Converged reports whether the replica holds the source's data for every key.
func (r *Report) Converged() bool { return r.KeysConverged == r.KeysTotal }

// OK is true when every injected divergence was detected, no false positive
// was raised and the target converged.
func (r *Report) OK() bool {
	return r.detected() == r.injected() && len(r.FalsePositives) == 0 && r.Converged()
}

// Losses counts what recon lost: injected divergences never flagged,
// verdicts never resolved and divergences never repaired.
func (r *Report) Losses() int {
	return r.injected() - r.detected() + len(r.Unresolved) + len(r.Unrepaired)
}

// ChaosOK is OK for a chaos run, and more: every kill was survived, the run
// settled, nothing was lost, no injected divergence got two ids, every
// repair was read and applied, and no event or input record went astray.
func (r *Report) ChaosOK() bool {
	return r.OK() && r.Chaos != nil && r.Chaos.Kills >= r.Chaos.Requested && r.Settled && r.Losses() == 0 &&
		r.Reopened == 0 && len(r.Repairs.Failed) == 0 && len(r.BadEvents) == 0 && len(r.DeadLettered) == 0
}

// Print writes the report as an aligned table.
func (r *Report) Print(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "\nrecon demo: seed %d, %d keys, %g changes/s for %s, window %s, %d partitions, format %s\n\n",
		o.Seed, o.Keys, o.Rate, o.Duration, o.Window, o.Partitions, o.Format)
	fmt.Fprintf(w, "%-17s%9s%10s\n", "divergences", "injected", "detected")
	for _, k := range r.Kinds {
		fmt.Fprintf(w, "  %-15s%9d%10d\n", k.Kind, k.Injected, k.Detected)
	}
	fmt.Fprintf(w, "  %-15s%9d%10d\n\n", "total", r.injected(), r.detected())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "false positives\t%d\n", len(r.FalsePositives))
	fmt.Fprintf(tw, "divergences\t%d opened, %d resolved, %d re-opened, %d duplicate events\n", r.Opened, r.Resolved, r.Reopened, r.DuplicateIDs)
	fmt.Fprintf(tw, "repairs\t%d published, %d applied, %d duplicates deduped, %d skipped by precondition, %d failed\n",
		r.Repairs.Published, r.Repairs.Applied, r.Repairs.Duplicates, r.Repairs.Skipped, len(r.Repairs.Failed))
	fmt.Fprintf(tw, "dead-lettered\t%d input records\n", len(r.DeadLettered))
	if c := r.Chaos; c != nil {
		var points []string
		for _, p := range slices.Sorted(maps.Keys(c.ByPoint)) {
			points = append(points, fmt.Sprintf("%s %d", p, c.ByPoint[p]))
		}
		fmt.Fprintf(tw, "kills survived\t%d of %d: %d SIGKILLs from outside, %d at crash points (%s); %d starts\n",
			c.Kills, c.Requested, c.Kills-c.SelfKills, c.SelfKills, strings.Join(points, ", "), c.Starts)
		fmt.Fprintf(tw, "divergences checked\t%d injected, %d opened\n", r.injected(), r.Opened)
		fmt.Fprintf(tw, "duplicates\t%d (a second id for one injected divergence)\n", r.Reopened)
		fmt.Fprintf(tw, "redelivered\t%d divergence events and %d repairs read again with the same id (harmless)\n",
			r.DuplicateIDs, r.Repairs.Duplicates)
		fmt.Fprintf(tw, "losses\t%d (%d undetected, %d unresolved, %d unrepaired)\n",
			r.Losses(), r.injected()-r.detected(), len(r.Unresolved), len(r.Unrepaired))
	}
	fmt.Fprintf(tw, "keys converged\t%d of %d\n", r.KeysConverged, r.KeysTotal)
	fmt.Fprintf(tw, "detection delay\tp50 %s, p99 %s (verdict after window expiry)\n", round(r.DetectionP50), round(r.DetectionP99))
	fmt.Fprintf(tw, "source\t%d changes: %d inserts, %d updates, %d deletes\n", r.SourceChanges(), r.Inserts, r.Updates, r.Deletes)
	fmt.Fprintf(tw, "target\t%d writes (copies and applied repairs)\n", r.TargetWrites)
	fmt.Fprintf(tw, "noise\t%d duplicate source records, %d duplicate and %d redelivered old target records, %d slow copies\n",
		r.NoiseDupSource, r.NoiseDupTarget, r.NoiseRedelivered, r.NoiseSlow)
	fmt.Fprintf(tw, "copy delay\tat most %s in Kafka (window %s)\n", round(r.MaxCopyDelay), o.Window)
	if r.LateCopies > 0 {
		fmt.Fprintf(tw, "WARNING\tthe simulator fell behind (an overloaded machine): %d keys reached Kafka a window late,\n", r.LateCopies)
		fmt.Fprintf(tw, "\tso verdicts on them are right and the ground truth is void for them\n")
	}
	settled := "settled"
	if !r.Settled {
		settled = "settle timeout"
	}
	fmt.Fprintf(tw, "wall time\t%s (workload %s, %s after %s)\n", round(r.Wall), round(r.Workload), settled, round(r.Settle))
	if r.Workload > 0 {
		fmt.Fprintf(tw, "rate\t%.0f changes/s achieved of %g requested\n", float64(r.SourceChanges())/r.Workload.Seconds(), o.Rate)
	}
	if m := r.Memory; m.Samples > 0 {
		fmt.Fprintf(tw, "memory\tRSS %s at start, %s mid-run, %s at the end of the workload, peak %s\n",
			mib(m.StartRSS), mib(m.MiddleRSS), mib(m.EndRSS), mib(m.PeakRSS))
		fmt.Fprintf(tw, "\tanonymous RSS %s, %s, %s (without the pages of Badger's mapped files)\n",
			mib(m.StartAnon), mib(m.MiddleAnon), mib(m.EndAnon))
		fmt.Fprintf(tw, "\theap in use %s, %s, %s, max %s (%d samples; one process: recon, broker, simulator)\n",
			mib(m.StartHeap), mib(m.MiddleHeap), mib(m.EndHeap), mib(m.MaxHeap), m.Samples)
	}
	tw.Flush()

	list := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for i, s := range items {
			if i == 10 {
				fmt.Fprintf(w, "  ... and %d more\n", len(items)-10)
				break
			}
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	list("false positives", verdictLines(r.FalsePositives))
	list("undetected", r.Undetected)
	list("unresolved", verdictLines(r.Unresolved))
	list("unrepaired", verdictLines(r.Unrepaired))
	list("keys not converged", r.Diverged)
	list("repairs that failed", r.Repairs.Failed)
	list("dead-lettered input", r.DeadLettered)
	list("unreadable divergence events", r.BadEvents)
	for _, t := range r.Timelines {
		fmt.Fprintf(w, "\ntimeline of %s:\n", t.Title)
		for _, l := range t.Lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}

	fmt.Fprintln(w)
	if r.Chaos != nil && r.ChaosOK() {
		fmt.Fprintf(w, "OK: %d kills survived; every injected divergence was reported once, none lost, no false positive, every repair applied once, the target converged\n", r.Chaos.Kills)
		return
	}
	if r.Chaos == nil && r.OK() {
		fmt.Fprintln(w, "OK: every injected divergence was detected, no false positive, the target converged")
		return
	}
	var why []string
	if r.detected() != r.injected() {
		why = append(why, fmt.Sprintf("%d of %d injected divergences undetected", r.injected()-r.detected(), r.injected()))
	}
	if n := len(r.FalsePositives); n > 0 {
		why = append(why, fmt.Sprintf("%d false positives", n))
	}
	if !r.Converged() {
		why = append(why, fmt.Sprintf("%d keys not converged", r.KeysTotal-r.KeysConverged))
	}
	if c := r.Chaos; c != nil {
		if c.Kills < c.Requested {
			why = append(why, fmt.Sprintf("%d of %d kills done", c.Kills, c.Requested))
		}
		if n := len(r.Unresolved) + len(r.Unrepaired); n > 0 {
			why = append(why, fmt.Sprintf("%d verdicts unresolved or unrepaired", n))
		}
		if r.Reopened > 0 {
			why = append(why, fmt.Sprintf("%d duplicate detections", r.Reopened))
		}
		if n := len(r.Repairs.Failed) + len(r.BadEvents) + len(r.DeadLettered); n > 0 {
			why = append(why, fmt.Sprintf("%d failed repairs, unreadable events or dead-lettered records", n))
		}
		if !r.Settled {
			why = append(why, "not settled")
		}
	}
	fmt.Fprintf(w, "FAILED: %s\n", strings.Join(why, ", "))
}

func verdictLines(vs []Verdict) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// percentile is the nearest-rank percentile p (0-100) of sorted ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := (p*len(ds)+99)/100 - 1
	return ds[max(0, min(i, len(ds)-1))]
}
