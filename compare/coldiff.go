package compare

import (
	"strconv"
	"strings"
)

// maxNamedColumns bounds each list of column names in a rationale, so that a
// wide table whose every column differs does not make a huge event.
const maxNamedColumns = 8

// columnDiff explains a conflict column by column, for its rationale: the
// columns only the source row has, those only the target row has, and those
// both have with different values, e.g.
//
//	; column "discount" only in the source; columns differ: amount
//
// A column on one side only is a schema difference (a column added on one
// side, a rename the config lacks, case_insensitive off), not a value that
// was silently ignored. The hashes are unkeyed, so only names are told, never
// values. It returns "" when either side's columns are unknown, since then
// nothing reliable can be said.
func columnDiff(src, tgt Columns) string {
	if len(src) == 0 || len(tgt) == 0 {
		return ""
	}
	var onlySrc, onlyTgt, differ []string
	i, j := 0, 0
	for i < len(src) || j < len(tgt) {
		switch {
		case j == len(tgt) || i < len(src) && src[i].Name < tgt[j].Name:
			onlySrc = append(onlySrc, src[i].Name)
			i++
		case i == len(src) || tgt[j].Name < src[i].Name:
			onlyTgt = append(onlyTgt, tgt[j].Name)
			j++
		default:
			if src[i].Hash != tgt[j].Hash {
				differ = append(differ, src[i].Name)
			}
			i++
			j++
		}
	}
	var b strings.Builder
	if len(onlySrc) > 0 {
		b.WriteString("; ")
		writeQuotedNames(&b, onlySrc)
		b.WriteString(" only in the source")
	}
	if len(onlyTgt) > 0 {
		b.WriteString("; ")
		writeQuotedNames(&b, onlyTgt)
		b.WriteString(" only in the target")
	}
	if len(differ) > 0 {
		b.WriteString("; columns differ: ")
		writeNames(&b, differ)
	}
	return b.String()
}

// writeQuotedNames writes `column "a"` or `columns "a", "b"`: quoted, since
// a name that exists on one side only may be oddly spelled.
func writeQuotedNames(b *strings.Builder, names []string) {
	if len(names) == 1 {
		b.WriteString("column ")
	} else {
		b.WriteString("columns ")
	}
	for k, n := range names {
		if k == maxNamedColumns {
			b.WriteString(" and " + strconv.Itoa(len(names)-k) + " more")
			return
		}
		if k > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(n))
	}
}

func writeNames(b *strings.Builder, names []string) {
	for k, n := range names {
		if k == maxNamedColumns {
			b.WriteString(" and " + strconv.Itoa(len(names)-k) + " more")
			return
		}
		if k > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n)
	}
}
