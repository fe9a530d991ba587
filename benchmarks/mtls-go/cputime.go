package main

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time this process has used, user and system. On a
// shared machine the wall-clock rate moves with other work; the rate per
// CPU second (both sides run in this process) moves much less.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// rate is n operations over a wall-clock and a CPU-time interval.
type rate struct {
	wall, cpu float64
}

// measure runs fn (n operations) and returns its rates.
func measure(n int, fn func() error) (rate, error) {
	wallStart, cpuStart := time.Now(), cpuTime()
	if err := fn(); err != nil {
		return rate{}, err
	}
	wall, cpu := time.Since(wallStart), cpuTime()-cpuStart
	r := rate{wall: float64(n) / wall.Seconds()}
	if cpu > 0 {
		r.cpu = float64(n) / cpu.Seconds()
	}
	return r, nil
}
