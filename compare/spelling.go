package compare

import (
	"maps"
	"strings"
	"sync"
	"sync/atomic"
)

// spellings remembers, under CaseInsensitive, how a system last spelled each
// column name it sent (folded name -> as received), so that SystemRow can
// write a dataset row back in the system's own names. A table has a bounded
// set of columns, so the map stays small; it changes only when a column is
// first seen or respelled, copy on write, and the decode workers check it on
// the hot path with one atomic load and a lookup per column.
type spellings struct {
	m  atomic.Pointer[map[string]string]
	mu sync.Mutex // serializes writers
}

// observe records the names of a row that had upper case (orig: folded ->
// as received).
func (s *spellings) observe(orig map[string]string) {
	cur := s.load()
	for f, name := range orig {
		if cur[f] != name {
			s.update(func(next map[string]string) { maps.Copy(next, orig) })
			return
		}
	}
}

// observeLower records the names of a row that sent them all in lower case.
func (s *spellings) observeLower(raw map[string]any) {
	cur := s.load()
	for name := range raw {
		if cur[name] != name {
			s.update(func(next map[string]string) {
				for name := range raw {
					next[name] = name
				}
			})
			return
		}
	}
}

func (s *spellings) update(apply func(next map[string]string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := maps.Clone(s.load())
	if next == nil {
		next = make(map[string]string)
	}
	apply(next)
	s.m.Store(&next)
}

func (s *spellings) load() map[string]string {
	if p := s.m.Load(); p != nil {
		return *p
	}
	return nil
}

// SystemRow renders a Row in dataset column names (as Normalize returns it,
// or as a repair carries the source's row) in this system's column names: a
// column that a rename maps onto gets its system name back. Under
// CaseInsensitive every name comes back as this system's rows (or keys) last
// spelled it, "ORDER_ID" or "Amount", as seen by Normalize and Key since the
// Rules were built; a name no row has sent since comes back as rename spells
// it in the config, else in lower case. Values are shared, not copied.
func (r *Rules) SystemRow(row Row) Row {
	var spelled map[string]string
	if r.fold {
		spelled = r.spell.load()
	}
	if len(r.onto) == 0 && len(spelled) == 0 && len(r.renameAs) == 0 {
		return row
	}
	out := make(Row, len(row))
	for col, v := range row {
		name := col
		if src, ok := r.onto[col]; ok {
			name = src
		}
		if s, ok := spelled[name]; ok {
			name = s
		} else if s, ok := r.renameAs[name]; ok {
			name = s
		}
		out[name] = v
	}
	return out
}

// renameSpellings maps each rename source, folded, to its spelling in the
// config when that is not lower case.
func renameSpellings(rename map[string]string) map[string]string {
	var out map[string]string
	for from := range rename {
		if f := strings.ToLower(from); f != from {
			if out == nil {
				out = make(map[string]string)
			}
			out[f] = from
		}
	}
	return out
}
