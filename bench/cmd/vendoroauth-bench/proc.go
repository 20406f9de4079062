package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// findPIDs returns the processes whose executable is exe and, when match is
// not empty, whose command line contains match.
func findPIDs(exe, match string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		got, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || got != exe {
			continue
		}
		if match != "" {
			cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil || !bytes.Contains(cmd, []byte(match)) {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// rssKiB returns a process's resident set size (VmRSS) in KiB.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// cpuTicks returns the user+system CPU time a process has used, in clock
// ticks; pid 0 means this process.
func cpuTicks(pid int) int64 {
	path := "/proc/self/stat"
	if pid > 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	// The command name is in parentheses and may hold spaces: the fields
	// counted below start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')' come state(3) ... utime(14) stime(15): indexes 11 and 12.
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return u + s
}

// cpuMeter measures the CPU time of a set of processes over an interval.
type cpuMeter struct {
	pids  map[string]int // role -> pid (0 = this process)
	start map[string]int64
}

func newCPUMeter(pids map[string]int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: map[string]int64{}}
	for role, pid := range pids {
		m.start[role] = cpuTicks(pid)
	}
	return m
}

// stop returns the CPU seconds each process used since newCPUMeter.
func (m *cpuMeter) stop() map[string]float64 {
	out := map[string]float64{}
	for role, pid := range m.pids {
		end := cpuTicks(pid)
		if end < 0 || m.start[role] < 0 {
			continue
		}
		out[role] = float64(end-m.start[role]) / clockTicks
	}
	return out
}

// cpuModel returns the CPU model name from /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
