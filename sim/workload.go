package sim

import (
	"math/rand/v2"
	"time"

	"github.com/recon-dev/recon/compare"
)

// Kinds lists the divergence kinds in the order reports show them.
var Kinds = []compare.DivergenceKind{compare.Missing, compare.Lagging, compare.Conflict, compare.Orphan}

// Faults are the rates at which the replica mishandles a change, each a
// fraction of the changes it applies to.
type Faults struct {
	Missing  float64 // inserts the replica drops
	Lagging  float64 // updates the replica drops
	Conflict float64 // updates whose amount the replica corrupts
	Orphan   float64 // deletes the replica drops
}

// DefaultFaults are the demo's rates: a few dozen divergences in a default run.
var DefaultFaults = Faults{Missing: 0.02, Lagging: 0.015, Conflict: 0.015, Orphan: 0.02}

// corruptBase keeps a corrupted amount apart from every amount the workload
// writes (at most 999.99), so it can never equal an older source version.
const corruptBase = 100000

// step is one source change and what the replica will make of it.
type step struct {
	change  Change
	fault   compare.DivergenceKind // "" when the replica copies it faithfully
	drop    bool                   // the replica never applies it
	corrupt int64                  // added to the amount the replica writes
	delay   time.Duration          // replication delay
	slow    bool                   // the delay is noise: long, but inside the window
	dupSrc  bool                   // the source record is delivered twice
	nz      noise
}

// workload decides every change of a run from one seeded generator, so a
// seed names a run: the same changes, faults and noise, whatever the timing.
type workload struct {
	rng    *rand.Rand
	src    *Source
	keys   int64
	window time.Duration
	faults Faults
	noise  float64
	force  bool // inject each kind at its first chance in the mixed phase

	nextID     int64 // the smallest id never used
	live, dead pool  // keys open to changes: live rows, deleted rows
	expected   map[int64]compare.DivergenceKind
	injected   map[compare.DivergenceKind]int
	inserts    int
	updates    int
	deletes    int
	noiseCount struct{ dupSrc, slow int }
}

func newWorkload(seed uint64, keys int, window time.Duration, f Faults, noise float64, force bool) *workload {
	return &workload{
		rng:    rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15)),
		src:    NewSource(),
		keys:   int64(keys),
		window: window,
		faults: f, noise: noise, force: force,
		nextID:   1,
		live:     newPool(),
		dead:     newPool(),
		expected: make(map[int64]compare.DivergenceKind),
		injected: make(map[compare.DivergenceKind]int),
	}
}

type opKind int

const (
	opNone opKind = iota
	opInsert
	opReinsert
	opUpdate
	opDelete
)

// pickOp: first half the key space is inserted, then a mix of about 60%
// updates, 20% inserts of new keys, 12% deletes and 8% re-inserts of deleted
// keys, falling back to what is possible when a pool runs dry. Deletes
// outnumber re-inserts so that deleted keys pile up and a re-insert often
// comes long after its delete, as it does in a real table.
func (w *workload) pickOp() (opKind, bool) {
	if w.nextID <= max(w.keys/2, 1) {
		return opInsert, false
	}
	var want opKind
	switch r := w.rng.Float64(); {
	case r < 0.6:
		want = opUpdate
	case r < 0.8:
		want = opInsert
	case r < 0.92:
		want = opDelete
	default:
		want = opReinsert
	}
	can := map[opKind]bool{
		opInsert:   w.nextID <= w.keys,
		opReinsert: w.dead.len() > 0,
		opUpdate:   w.live.len() > 0,
		opDelete:   w.live.len() > 1,
	}
	fallback := map[opKind][]opKind{
		opUpdate:   {opUpdate, opInsert, opReinsert},
		opInsert:   {opInsert, opUpdate, opReinsert},
		opDelete:   {opDelete, opUpdate, opInsert, opReinsert},
		opReinsert: {opReinsert, opInsert, opUpdate},
	}
	for _, op := range fallback[want] {
		if can[op] {
			return op, true
		}
	}
	return opNone, true
}

// next makes the next source change at now; false when every key is frozen.
func (w *workload) next(now time.Time) (step, bool) {
	now = micros(now)
	op, mixed := w.pickOp()
	var id int64
	var row Order
	var dbOp byte
	switch op {
	case opNone:
		return step{}, false
	case opInsert, opReinsert:
		if op == opInsert {
			id = w.nextID
			w.nextID++
		} else {
			id = w.dead.random(w.rng)
			w.dead.remove(id)
		}
		row, dbOp = w.newOrder(id, now), 'c'
		w.live.add(id)
		w.inserts++
	case opUpdate:
		id = w.live.random(w.rng)
		cur, _ := w.src.Row(id)
		row, dbOp = w.mutate(cur, now), 'u'
		w.updates++
	case opDelete:
		id = w.live.random(w.rng)
		row, dbOp = Order{ID: id}, 'd'
		w.live.remove(id)
		w.dead.add(id)
		w.deletes++
	}
	s := step{change: w.src.Apply(dbOp, row, now, 40+uint64(w.rng.IntN(400)))}
	w.inject(&s, mixed)
	w.addNoise(&s)
	return s, true
}

// inject decides the change's fault. A faulted key is frozen: the source
// never changes it again, so the expected verdict stays exactly known.
func (w *workload) inject(s *step, mixed bool) {
	chance := func(kind compare.DivergenceKind, rate float64) bool {
		hit := w.rng.Float64() < rate
		return hit || (w.force && mixed && w.injected[kind] == 0)
	}
	switch s.change.Op {
	case 'c':
		if chance(compare.Missing, w.faults.Missing) {
			s.fault, s.drop = compare.Missing, true
		}
	case 'u':
		r := w.rng.Float64()
		forced := w.force && mixed
		switch {
		case r < w.faults.Lagging || forced && w.injected[compare.Lagging] == 0:
			s.fault, s.drop = compare.Lagging, true
		case r < w.faults.Lagging+w.faults.Conflict || forced && w.injected[compare.Conflict] == 0:
			s.fault = compare.Conflict
			s.corrupt = corruptBase + 1 + int64(w.rng.IntN(99))
		}
	case 'd':
		if chance(compare.Orphan, w.faults.Orphan) {
			s.fault, s.drop = compare.Orphan, true
		}
	}
	if s.fault == "" {
		return
	}
	id := s.change.Row.ID
	w.expected[id] = s.fault
	w.injected[s.fault]++
	w.live.remove(id)
	w.dead.remove(id)
}

// addNoise decides the harmless extras: a duplicate source record, a
// duplicate or a redelivered older replica record, and now and then a
// replication delay far longer than usual yet inside the window.
func (w *workload) addNoise(s *step) {
	s.dupSrc = w.rng.Float64() < w.noise
	s.nz.duplicate = w.rng.Float64() < w.noise
	s.nz.redeliver = w.rng.Float64() < w.noise
	s.slow = w.rng.Float64() < w.noise
	third := w.window / 3
	if s.slow {
		s.delay = third + time.Duration(w.rng.Int64N(int64(w.window*6/10-third)+1))
	} else {
		s.delay = time.Duration(w.rng.Int64N(int64(third) + 1))
	}
	if s.dupSrc {
		w.noiseCount.dupSrc++
	}
	if s.slow && !s.drop {
		w.noiseCount.slow++
	}
}

var (
	customers = []string{"ada", "grace", "linus", "barbara", "ken", "margaret", "dennis", "frances", "edsger", "zoë"}
	statuses  = []string{"new", "paid", "shipped", "delivered", "cancelled"}
	notes     = []*string{nil, ptr("gift wrap"), ptr("leave at the door"), ptr("fragile, ça va"), ptr("call before 9")}
)

func ptr(s string) *string { return &s }

func (w *workload) newOrder(id int64, now time.Time) Order {
	return Order{
		ID:        id,
		Customer:  customers[w.rng.IntN(len(customers))],
		Amount:    w.amount(-1),
		Status:    "new",
		Quantity:  int32(1 + w.rng.IntN(9)),
		CreatedAt: now,
		UpdatedAt: now,
		Note:      notes[w.rng.IntN(len(notes))],
	}
}

// amount is a fresh amount from 1.00 to 999.99, different from not.
func (w *workload) amount(not int64) int64 {
	a := int64(100 + w.rng.IntN(99900))
	if a == not {
		a = 100 + (a-100+1)%99900
	}
	return a
}

// mutate changes one compared column of o: an update that only touched
// ignored columns would be no divergence if dropped.
func (w *workload) mutate(o Order, now time.Time) Order {
	o.UpdatedAt = now
	switch w.rng.IntN(4) {
	case 0:
		i := indexOf(statuses, o.Status)
		o.Status = statuses[(i+1+w.rng.IntN(len(statuses)-1))%len(statuses)]
	case 1:
		o.Amount = w.amount(o.Amount)
	case 2:
		o.Quantity = 1 + (o.Quantity+int32(w.rng.IntN(8)))%9
	default:
		i := indexOfNote(o.Note)
		o.Note = notes[(i+1+w.rng.IntN(len(notes)-1))%len(notes)]
	}
	return o
}

func indexOf(xs []string, s string) int {
	for i, x := range xs {
		if x == s {
			return i
		}
	}
	return 0
}

func indexOfNote(n *string) int {
	for i, x := range notes {
		if (x == nil) == (n == nil) && (x == nil || *x == *n) {
			return i
		}
	}
	return 0
}

// pool is a set of ids with O(1) add, remove and uniform random pick.
type pool struct {
	ids []int64
	at  map[int64]int
}

func newPool() pool { return pool{at: make(map[int64]int)} }

func (p *pool) len() int { return len(p.ids) }

func (p *pool) add(id int64) {
	if _, ok := p.at[id]; ok {
		return
	}
	p.at[id] = len(p.ids)
	p.ids = append(p.ids, id)
}

func (p *pool) remove(id int64) {
	i, ok := p.at[id]
	if !ok {
		return
	}
	last := p.ids[len(p.ids)-1]
	p.ids[i], p.at[last] = last, i
	p.ids = p.ids[:len(p.ids)-1]
	delete(p.at, id)
}

func (p *pool) random(rng *rand.Rand) int64 { return p.ids[rng.IntN(len(p.ids))] }
