package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

var ratioLine = regexp.MustCompile(`^ratio: \d\.\d{3}$`)

// TestBenchSmall runs the bench on a tiny workload: it must succeed and end
// with the ratio line. Timings are not asserted.
func TestBenchSmall(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"--records", "1000", "--keys", "100", "--partitions", "1", "--dir", t.TempDir()}
	if err := cmdBench(t.Context(), args, &out, &errb); err != nil {
		t.Fatalf("recon bench: %v\nstderr: %s", err, errb.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if last := lines[len(lines)-1]; !ratioLine.MatchString(last) {
		t.Errorf("last line %q, want ratio: N.NNN\n%s", last, out.String())
	}
	for _, want := range []string{"workload: 1000 records", "raw consume:", "full recon:", "state keys", "divergences opened: 0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBenchBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--records", "1"},
		{"--keys", "0"},
		{"--partitions", "0"},
		{"extra"},
		{"--nope"},
	} {
		var out, errb bytes.Buffer
		if err := cmdBench(t.Context(), args, &out, &errb); err == nil {
			t.Errorf("recon bench %v: want an error", args)
		}
	}
}
