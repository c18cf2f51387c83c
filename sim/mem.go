package sim

import (
	"runtime"
	"strconv"
	"time"

	"github.com/recon-dev/recon/internal/procstat"
)

// memSample is the process's memory at one moment of a run: recon, the
// embedded broker and the simulator share the process.
type memSample struct {
	at        time.Duration // since the workload started
	rss       int64         // resident set, bytes (0 where /proc is missing)
	anon      int64         // its anonymous part: without the pages of mapped files (Badger's)
	heapInuse int64         // Go heap spans in use, bytes
}

// Memory sums up a run's memory, to show whether it stayed flat.
type Memory struct {
	// RSS at the start, the middle and the end of the workload, and the
	// peak (VmHWM) over the whole run; 0 where /proc is missing.
	StartRSS, MiddleRSS, EndRSS, PeakRSS int64
	// RssAnon at the same moments: memory proper, without the page cache
	// of the files Badger maps (its value log grows with every write until
	// its garbage collection rewrites it).
	StartAnon, MiddleAnon, EndAnon int64
	// HeapInuse at the same moments, and its highest sample.
	StartHeap, MiddleHeap, EndHeap, MaxHeap int64
	Samples                                 int
}

// memSampler keeps one sample a second: a ten-minute run keeps 600.
type memSampler struct {
	samples []memSample
}

func (m *memSampler) sample(at time.Duration) memSample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, _ := procstat.Bytes(procstat.RSS)
	anon, _ := procstat.Bytes(procstat.AnonRSS)
	s := memSample{at: at, rss: rss, anon: anon, heapInuse: int64(ms.HeapInuse)}
	m.samples = append(m.samples, s)
	return s
}

// summary picks the samples nearest the start, the middle and the end of a
// workload that lasted workload.
func (m *memSampler) summary(workload time.Duration) Memory {
	var out Memory
	out.Samples = len(m.samples)
	if len(m.samples) == 0 {
		return out
	}
	nearest := func(at time.Duration) memSample {
		best := m.samples[0]
		for _, s := range m.samples {
			if (s.at - at).Abs() < (best.at - at).Abs() {
				best = s
			}
		}
		return best
	}
	start, mid, end := nearest(0), nearest(workload/2), nearest(workload)
	out.StartRSS, out.MiddleRSS, out.EndRSS = start.rss, mid.rss, end.rss
	out.StartAnon, out.MiddleAnon, out.EndAnon = start.anon, mid.anon, end.anon
	out.StartHeap, out.MiddleHeap, out.EndHeap = start.heapInuse, mid.heapInuse, end.heapInuse
	for _, s := range m.samples {
		out.MaxHeap = max(out.MaxHeap, s.heapInuse)
	}
	out.PeakRSS, _ = procstat.Bytes(procstat.PeakRSS)
	return out
}

func mib(n int64) string { return strconv.FormatInt((n+1<<19)>>20, 10) + " MiB" }
