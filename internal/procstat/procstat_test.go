package procstat

import (
	"os"
	"testing"
)

func TestParse(t *testing.T) {
	status := []byte("Name:\trecon\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nRssAnon:\t   51200 kB\nBroken:\t\n")
	for _, tc := range []struct {
		field string
		want  int64
		ok    bool
	}{
		{PeakRSS, 200 << 20, true},
		{RSS, 100 << 20, true},
		{AnonRSS, 50 << 20, true},
		{"Broken:", 0, false},
		{"VmSwap:", 0, false},
	} {
		if got, ok := parse(status, tc.field); got != tc.want || ok != tc.ok {
			t.Errorf("%s: %d, %v; want %d, %v", tc.field, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBytesOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc here")
	}
	if n, ok := Bytes(RSS); !ok || n <= 0 {
		t.Fatalf("RSS of this process: %d, %v", n, ok)
	}
}
