// Command loadgen is the benchmark's neutral WebSocket load generator, built
// on gorilla/websocket so that it shares no code with the servers under test.
//
// Modes (one JSON line of results on stdout; errors on stderr, exit 1):
//
//	throughput  -conns N -inflight K -size B [-binary]: messages echoed per second
//	rtt         one connection, one message in flight: round-trip percentiles
//	idle        open -conns N, report the accept rate, hold them until stdin ends
//	serve       a gorilla echo server at /echo, for the client scenario
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// closeWait bounds how long a connection waits for the echo of its close frame.
const closeWait = time.Second

type options struct {
	url      string
	conns    int
	inflight int
	size     int
	binary   bool
	warmup   time.Duration
	duration time.Duration
	dialers  int
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: loadgen throughput|rtt|idle|serve [flags]"))
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	var o options
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:8080/echo", "server URL")
	fs.IntVar(&o.conns, "conns", 1, "connections")
	fs.IntVar(&o.inflight, "inflight", 1, "messages in flight per connection")
	fs.IntVar(&o.size, "size", 32, "message size in bytes")
	fs.BoolVar(&o.binary, "binary", false, "send binary messages instead of text")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "time before counting starts")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "time counted")
	fs.IntVar(&o.dialers, "dialers", 64, "concurrent dials in idle mode")
	addr := fs.String("addr", "127.0.0.1:0", "listen address in serve mode")
	_ = fs.Parse(os.Args[2:])

	var err error
	switch mode {
	case "throughput":
		err = throughput(o)
	case "rtt":
		err = rtt(o)
	case "idle":
		err = idle(o)
	case "serve":
		err = serve(*addr)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}

func emit(v any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func payload(o options) ([]byte, int) {
	if o.binary {
		p := make([]byte, o.size)
		_, _ = rand.Read(p)
		return p, websocket.BinaryMessage
	}
	p := make([]byte, o.size)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p, websocket.TextMessage
}

func dialer(size int) *websocket.Dialer {
	// A write buffer that holds a whole message keeps each message one frame
	// (gorilla fragments a client message that overflows its buffer).
	return &websocket.Dialer{
		ReadBufferSize:   64 * 1024,
		WriteBufferSize:  size + 64,
		HandshakeTimeout: 10 * time.Second,
	}
}

// closeConn runs the closing handshake briefly, then ends TCP.
func closeConn(c *websocket.Conn, readerDone <-chan struct{}) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait))
	if readerDone != nil {
		select {
		case <-readerDone:
		case <-time.After(closeWait):
		}
	}
	_ = c.Close()
}

func throughput(o options) error {
	data, kind := payload(o)
	d := dialer(o.size)
	conns := make([]*websocket.Conn, o.conns)
	for i := range conns {
		c, _, err := d.Dial(o.url, nil)
		if err != nil {
			return fmt.Errorf("dial %s: %w", o.url, err)
		}
		conns[i] = c
	}
	var received, bytes atomic.Int64
	var stop atomic.Bool
	errs := make(chan error, 2*o.conns)
	readersDone := make([]chan struct{}, o.conns)
	for i, c := range conns {
		sem := make(chan struct{}, o.inflight)
		done := make(chan struct{})
		readersDone[i] = done
		go func(c *websocket.Conn) {
			for {
				sem <- struct{}{}
				if stop.Load() {
					return
				}
				if err := c.WriteMessage(kind, data); err != nil {
					errs <- err
					return
				}
			}
		}(c)
		go func(c *websocket.Conn) {
			defer close(done)
			for {
				_, r, err := c.NextReader()
				if err != nil {
					if !stop.Load() {
						errs <- err
					}
					return
				}
				n, err := io.Copy(io.Discard, r)
				if err != nil {
					if !stop.Load() {
						errs <- err
					}
					return
				}
				if int(n) != o.size {
					errs <- fmt.Errorf("echo of %d bytes, sent %d", n, o.size)
					return
				}
				received.Add(1)
				bytes.Add(n)
				<-sem
			}
		}(c)
	}
	select {
	case err := <-errs:
		return err
	case <-time.After(o.warmup):
	}
	m0, b0, t0 := received.Load(), bytes.Load(), time.Now()
	select {
	case err := <-errs:
		return err
	case <-time.After(o.duration):
	}
	m1, b1, t1 := received.Load(), bytes.Load(), time.Now()
	stop.Store(true)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func(c *websocket.Conn, done chan struct{}) {
			defer wg.Done()
			closeConn(c, done)
		}(c, readersDone[i])
	}
	wg.Wait()
	secs := t1.Sub(t0).Seconds()
	emit(map[string]any{
		"messages":      m1 - m0,
		"bytes":         b1 - b0,
		"seconds":       secs,
		"msgs_per_s":    float64(m1-m0) / secs,
		"mbytes_per_s":  float64(b1-b0) / secs / 1e6,
		"conns":         o.conns,
		"inflight":      o.inflight,
		"message_bytes": o.size,
	})
	return nil
}

func rtt(o options) error {
	data, kind := payload(o)
	c, _, err := dialer(o.size).Dial(o.url, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", o.url, err)
	}
	samples := make([]time.Duration, 0, 1<<16)
	begin := time.Now()
	countFrom := begin.Add(o.warmup)
	end := countFrom.Add(o.duration)
	for {
		t0 := time.Now()
		if t0.After(end) {
			break
		}
		if err := c.WriteMessage(kind, data); err != nil {
			return err
		}
		_, r, err := c.NextReader()
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			return err
		}
		if int(n) != o.size {
			return fmt.Errorf("echo of %d bytes, sent %d", n, o.size)
		}
		if t0.After(countFrom) {
			samples = append(samples, time.Since(t0))
		}
	}
	closeConn(c, nil)
	if len(samples) == 0 {
		return errors.New("no round trips measured")
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	us := func(q float64) float64 {
		return float64(samples[int(q*float64(len(samples)-1))].Nanoseconds()) / 1e3
	}
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	emit(map[string]any{
		"samples": len(samples),
		"p50_us":  us(0.50),
		"p99_us":  us(0.99),
		"mean_us": float64(sum.Nanoseconds()) / float64(len(samples)) / 1e3,
	})
	return nil
}

func idle(o options) error {
	d := dialer(0)
	conns := make([]*websocket.Conn, o.conns)
	next := make(chan int)
	errs := make(chan error, o.dialers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < o.dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, _, err := d.Dial(o.url, nil)
				if err != nil {
					errs <- fmt.Errorf("dial %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	var dialErr error
feed:
	for i := 0; i < o.conns; i++ {
		select {
		case next <- i:
		case dialErr = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if dialErr == nil {
		select {
		case dialErr = <-errs:
		default:
		}
	}
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	if dialErr != nil {
		return dialErr
	}
	emit(map[string]any{
		"event":        "held",
		"conns":        o.conns,
		"seconds":      elapsed,
		"accept_per_s": float64(o.conns) / elapsed,
	})
	// Hold until the caller has measured and closes our stdin.
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	var cw sync.WaitGroup
	for _, c := range conns {
		cw.Add(1)
		go func(c *websocket.Conn) {
			defer cw.Done()
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait))
		}(c)
	}
	cw.Wait()
	emit(map[string]any{"event": "done"})
	return nil
}

func serve(addr string) error {
	up := websocket.Upgrader{
		ReadBufferSize:  64 * 1024,
		WriteBufferSize: 64 * 1024,
		CheckOrigin:     func(*http.Request) bool { return true },
	}
	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			kind, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(kind, data); err != nil {
				return
			}
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	emit(map[string]any{"event": "listening", "addr": ln.Addr().String()})
	go func() {
		// The caller stops the server by closing our stdin.
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = ln.Close()
	}()
	err = http.Serve(ln, nil)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
