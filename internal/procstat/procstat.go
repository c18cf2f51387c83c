// Package procstat reads the process's memory figures from
// /proc/self/status, for the demo's memory report and the memory
// benchmarks. Where /proc is missing (not Linux) it reports nothing.
package procstat

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// Fields of /proc/self/status worth reading.
const (
	RSS     = "VmRSS:"   // resident set
	PeakRSS = "VmHWM:"   // highest resident set so far
	AnonRSS = "RssAnon:" // resident set without the pages of mapped files
)

// Bytes reads a size field of /proc/self/status ("123456 kB"), in bytes;
// ok is false where the file or the field is missing.
func Bytes(field string) (n int64, ok bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	return parse(b, field)
}

func parse(status []byte, field string) (int64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte(field))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		return kb << 10, err == nil
	}
	return 0, false
}
