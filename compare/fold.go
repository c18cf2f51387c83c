package compare

import (
	"fmt"
	"strings"
)

// foldSettings lower-cases every configured column name for CaseInsensitive.
// Two settings that differ only in case would silently overwrite each other
// once folded, so they are reported instead.
func foldSettings(key []string, rename map[string]string, ignore []string, types map[string]string) ([]string, map[string]string, []string, map[string]string, []error) {
	var errs []error
	fkey := make([]string, len(key))
	for i, k := range key {
		fkey[i] = strings.ToLower(k)
	}
	frename := make(map[string]string, len(rename))
	orig := make(map[string]string, len(rename)) // folded -> as configured
	for _, from := range sortedKeys(rename) {
		f := strings.ToLower(from)
		if prev, dup := orig[f]; dup {
			errs = append(errs, fmt.Errorf("rename: %q and %q are the same column ignoring case", prev, from))
			continue
		}
		orig[f] = from
		frename[f] = strings.ToLower(rename[from])
	}
	fignore := make([]string, len(ignore))
	for i, c := range ignore {
		fignore[i] = strings.ToLower(c)
	}
	ftypes := make(map[string]string, len(types))
	torig := make(map[string]string, len(types))
	for _, col := range sortedKeys(types) {
		f := strings.ToLower(col)
		if prev, dup := torig[f]; dup {
			errs = append(errs, fmt.Errorf("types: %q and %q are the same column ignoring case", prev, col))
			continue
		}
		torig[f] = col
		ftypes[f] = types[col]
	}
	return fkey, frename, fignore, ftypes, errs
}

// foldRow returns raw with lower-case column names under CaseInsensitive, and
// raw itself otherwise or when its names are lower case already (the common
// case costs no copy). Two columns that differ only in case are ambiguous.
// It records how the names were spelled, for SystemRow.
func (r *Rules) foldRow(raw map[string]any) (map[string]any, error) {
	if !r.fold {
		return raw, nil
	}
	clean := true
	for name := range raw {
		if hasUpper(name) {
			clean = false
			break
		}
	}
	if clean {
		r.spell.observeLower(raw)
		return raw, nil
	}
	out := make(map[string]any, len(raw))
	orig := make(map[string]string, len(raw))
	for name, v := range raw {
		f := strings.ToLower(name)
		if prev, dup := orig[f]; dup {
			a, b := min(prev, name), max(prev, name) // stable text whatever the map order
			return nil, fmt.Errorf("column %q: both %q and %q are sent and compare.case_insensitive is set", f, a, b)
		}
		orig[f] = name
		out[f] = v
	}
	r.spell.observe(orig)
	return out, nil
}

// hasUpper reports whether strings.ToLower would change s.
func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || c >= 0x80 {
			return true // non-ASCII: let ToLower decide
		}
	}
	return false
}
