package server

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// AccessLogFlushInterval is the longest an access log line waits in the
// buffer before it is written out.
const AccessLogFlushInterval = 100 * time.Millisecond

// bufferedLog batches access log lines into few writes (one write system
// call per request costs a fair share of a proxied request); lines reach
// the output within AccessLogFlushInterval, and all of them on close. A
// crash loses what is in the buffer, and can cut its last line short.
type bufferedLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newBufferedLog(out io.Writer) *bufferedLog {
	b := &bufferedLog{w: bufio.NewWriterSize(out, 64*1024), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushLoop()
	return b
}

func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

func (b *bufferedLog) flush() {
	b.mu.Lock()
	_ = b.w.Flush()
	b.mu.Unlock()
}

func (b *bufferedLog) flushLoop() {
	defer close(b.done)
	ticker := time.NewTicker(AccessLogFlushInterval)
	defer ticker.Stop()
	for {
		select {
		case <-b.stop:
			b.flush()
			return
		case <-ticker.C:
			b.flush()
		}
	}
}

// close writes out every buffered line and stops the timer.
func (b *bufferedLog) close() {
	close(b.stop)
	<-b.done
}
