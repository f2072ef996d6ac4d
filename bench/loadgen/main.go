// Command loadgen is the benchmark's neutral WebSocket load generator, built
// on gorilla/websocket so that it shares no code with the servers under test.
//
// Modes (JSON lines on stdout, the last one {"event":"result",…}; errors on
// stderr, exit 1):
//
//	throughput  -conns N -inflight K -size B [-binary | -json] [-compress] [-wire]:
//	            messages echoed per second; -json sends realistic JSON text
//	            (distinct messages of exactly B bytes), -compress offers
//	            permessage-deflate (gorilla's only mode: no context takeover
//	            either way), -wire counts the bytes on the TCP connections
//	rtt         one connection, one message in flight: round-trip percentiles
//	accept      -dialers N: connections per second, each upgraded then closed
//	pipelined   -conns N -burst K -size B: bursts of K messages written back to
//	            back while every echo is read; counts echoes lost and closes
//	idle        open -conns N, report the accept rate, hold them until stdin ends
//	storm       -count N -dialers P: N clients through P concurrent dialers, each
//	            dialing, upgrading, sending one message and waiting for its
//	            echo, then closing (a reconnect storm); storm time and
//	            connect+echo percentiles; the window is the whole storm
//
// The timed modes print {"event":"window","phase":"start"} and
// {"event":"window","phase":"end"} the moment they take their counters at the
// start and the end of the counted window, so the caller can read the
// server's CPU time at the same moments.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// closeWait bounds how long a connection waits for the echo of its close frame.
const closeWait = time.Second

// echoWait bounds how long the pipelined mode waits for the next echo (or a
// write to go through) before it counts the rest of the burst as lost.
const echoWait = 10 * time.Second

type options struct {
	url      string
	conns    int
	inflight int
	size     int
	binary   bool
	warmup   time.Duration
	duration time.Duration
	dialers  int
	burst    int
	localIPs int
	firstIP  int
	buffer   int
	read     bool
	json     bool
	compress bool
	wire     bool
	count    int
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: loadgen throughput|rtt|accept|pipelined|idle|storm [flags]"))
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
	fs.IntVar(&o.dialers, "dialers", 64, "concurrent dials in idle and accept modes")
	fs.IntVar(&o.burst, "burst", 64, "messages written back to back in pipelined mode")
	fs.IntVar(&o.localIPs, "local-ips", 0,
		"idle mode: dial from N source addresses 127.0.0.F, 127.0.0.F+1 …, round robin (0: let the kernel pick)")
	fs.IntVar(&o.firstIP, "local-ip-first", 2, "idle mode: F, the last byte of the first source address")
	fs.IntVar(&o.buffer, "buffer", 0, "idle mode: read and write buffer bytes per connection (0: 64 KiB read)")
	fs.BoolVar(&o.read, "read", false, "idle mode: read every connection (answers pings, sees closes)")
	fs.BoolVar(&o.json, "json", false, "throughput mode: send realistic JSON text of exactly -size bytes")
	fs.BoolVar(&o.compress, "compress", false, "throughput mode: offer permessage-deflate")
	fs.BoolVar(&o.wire, "wire", false, "throughput mode: count the bytes on the TCP connections")
	fs.IntVar(&o.count, "count", 10000, "storm mode: clients in all")

	_ = fs.Parse(os.Args[2:])

	var err error
	switch mode {
	case "throughput":
		err = throughput(o)
	case "rtt":
		err = rtt(o)
	case "accept":
		err = accept(o)
	case "pipelined":
		err = pipelined(o)
	case "idle":
		err = idle(o)
	case "storm":
		err = storm(o)
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

// mark tells the caller that the counters of the window's start or end were just taken.
func mark(phase string) {
	emit(map[string]any{"event": "window", "phase": phase})
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

// jsonPayloads returns `count` distinct JSON documents of exactly `size`
// bytes each, of the kind an API sends: records whose field names repeat and
// whose values vary, then a "note" string that fills the document to size.
func jsonPayloads(size, count int) [][]byte {
	cities := []string{"Lyon", "Osaka", "Sao Paulo", "Krakow", "Zurich", "Reykjavik"}
	words := []string{"order", "shipped", "pending", "refund", "invoice", "customer",
		"priority", "standard", "express", "warehouse", "returned", "delivered"}
	tags := []string{`"alpha"`, `"beta"`, `"gamma"`, `"delta"`}
	rng := mrand.New(mrand.NewSource(42))
	out := make([][]byte, count)
	const tail = `],"note":""}`
	for k := range out {
		var b bytes.Buffer
		fmt.Fprintf(&b, `{"page":%d,"records":[`, k)
		for i := 0; ; i++ {
			id := 100000 + k*100 + i
			user := rng.Intn(1000)
			rec := fmt.Sprintf(`{"id":%d,"user":"user%d","email":"user%d@example.com",`+
				`"city":"%s","active":%t,"score":%.1f,"tags":[%s],"created_at":"%s"}`,
				id, user, user, cities[rng.Intn(len(cities))], rng.Intn(3) != 0,
				float64(rng.Intn(1000))/10, strings.Join(tags[:1+rng.Intn(len(tags))], ","),
				time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Intn(1e6))*time.Second).
					Format(time.RFC3339))
			sep := 0
			if i > 0 {
				sep = 1
			}
			if b.Len()+sep+len(rec)+len(tail) > size {
				break
			}
			if sep == 1 {
				b.WriteByte(',')
			}
			b.WriteString(rec)
		}
		b.WriteString(`],"note":"`)
		for b.Len() < size-2 {
			w := words[rng.Intn(len(words))] + " "
			if left := size - 2 - b.Len(); len(w) > left {
				w = w[:left]
			}
			b.WriteString(w)
		}
		b.WriteString(`"}`)
		out[k] = b.Bytes()
	}
	return out
}

// wireCounter counts the bytes read and written on every connection of a dialer.
type wireCounter struct{ in, out atomic.Int64 }

type countedConn struct {
	net.Conn
	w *wireCounter
}

func (c countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.w.in.Add(int64(n))
	return n, err
}

func (c countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w.out.Add(int64(n))
	return n, err
}

// count makes d's connections count their bytes in w.
func (w *wireCounter) count(d *websocket.Dialer) {
	d.NetDial = func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		return countedConn{c, w}, nil
	}
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
	messages := [][]byte{data}
	if o.json {
		messages, kind = jsonPayloads(o.size, 64), websocket.TextMessage
	}
	d := dialer(o.size)
	d.EnableCompression = o.compress
	var wire wireCounter
	if o.wire {
		wire.count(d)
	}
	conns := make([]*websocket.Conn, o.conns)
	extensions := ""
	for i := range conns {
		c, resp, err := d.Dial(o.url, nil)
		if err != nil {
			return fmt.Errorf("dial %s: %w", o.url, err)
		}
		if i == 0 {
			extensions = resp.Header.Get("Sec-WebSocket-Extensions")
		}
		conns[i] = c
	}
	var received, bytes, sentBytes atomic.Int64
	var stop atomic.Bool
	errs := make(chan error, 2*o.conns)
	readersDone := make([]chan struct{}, o.conns)
	for i, c := range conns {
		sem := make(chan struct{}, o.inflight)
		done := make(chan struct{})
		readersDone[i] = done
		go func(c *websocket.Conn, first int) {
			for k := first; ; k++ {
				sem <- struct{}{}
				if stop.Load() {
					return
				}
				msg := messages[k%len(messages)]
				if err := c.WriteMessage(kind, msg); err != nil {
					errs <- err
					return
				}
				sentBytes.Add(int64(len(msg)))
			}
		}(c, i)
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
	m0, b0, s0, in0, out0, t0 := received.Load(), bytes.Load(), sentBytes.Load(), wire.in.Load(),
		wire.out.Load(), time.Now()
	mark("start")
	select {
	case err := <-errs:
		return err
	case <-time.After(o.duration):
	}
	m1, b1, s1, in1, out1, t1 := received.Load(), bytes.Load(), sentBytes.Load(), wire.in.Load(),
		wire.out.Load(), time.Now()
	mark("end")
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
	result := map[string]any{
		"event":         "result",
		"messages":      m1 - m0,
		"bytes":         b1 - b0,
		"seconds":       secs,
		"msgs_per_s":    float64(m1-m0) / secs,
		"mbytes_per_s":  float64(b1-b0) / secs / 1e6,
		"conns":         o.conns,
		"inflight":      o.inflight,
		"message_bytes": o.size,
		"extensions":    extensions,
	}
	if o.wire {
		// Payload bytes against TCP bytes in the window, each way: "in" is
		// what the server sent (its compression), "out" what we sent.
		result["sent_bytes"] = s1 - s0
		result["wire_in"] = in1 - in0
		result["wire_out"] = out1 - out0
	}
	emit(result)
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
	counting := false
	for {
		t0 := time.Now()
		if t0.After(end) {
			break
		}
		if !counting && t0.After(countFrom) {
			counting = true
			mark("start")
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
	if counting {
		mark("end")
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
		"event":   "result",
		"samples": len(samples),
		"p50_us":  us(0.50),
		"p99_us":  us(0.99),
		"mean_us": float64(sum.Nanoseconds()) / float64(len(samples)) / 1e3,
	})
	return nil
}

// idleDialers returns one dialer per source address (-local-ips), or one
// dialer when the kernel picks the source.
func idleDialers(o options) []*websocket.Dialer {
	base := func() *websocket.Dialer {
		d := dialer(0)
		if o.buffer > 0 {
			d.ReadBufferSize, d.WriteBufferSize = o.buffer, o.buffer
		}
		return d
	}
	if o.localIPs <= 0 {
		return []*websocket.Dialer{base()}
	}
	ds := make([]*websocket.Dialer, o.localIPs)
	for k := range ds {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(o.firstIP+k))}}
		ds[k] = base()
		ds[k].NetDialContext = nd.DialContext
	}
	return ds
}

func idle(o options) error {
	if o.localIPs > 0 && (o.firstIP < 1 || o.firstIP+o.localIPs > 255) {
		return errors.New("-local-ip-first and -local-ips must stay within 127.0.0.1 … 127.0.0.254")
	}
	ds := idleDialers(o)
	conns := make([]*websocket.Conn, o.conns)
	next := make(chan int)
	errs := make(chan error, o.dialers)
	var opened, closedEarly atomic.Int64
	var stopping atomic.Bool
	var wg sync.WaitGroup
	mark("start")
	start := time.Now()
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	go func() {
		for range progress.C {
			fmt.Fprintf(os.Stderr, "{\"event\":\"progress\",\"open\":%d}\n", opened.Load())
		}
	}()
	for w := 0; w < o.dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, _, err := ds[i%len(ds)].Dial(o.url, nil)
				if err != nil {
					errs <- fmt.Errorf("dial %d: %w", i, err)
					return
				}
				conns[i] = c
				opened.Add(1)
				if o.read {
					// Reading answers the server's pings (gorilla's default ping
					// handler) and notices a connection the server ends.
					go func(c *websocket.Conn) {
						for {
							if _, _, err := c.NextReader(); err != nil {
								if !stopping.Load() {
									closedEarly.Add(1)
								}
								return
							}
						}
					}(c)
				}
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
	progress.Stop()
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
		return fmt.Errorf("%w (%d connections were open)", dialErr, opened.Load())
	}
	emit(map[string]any{
		"event":        "held",
		"conns":        o.conns,
		"seconds":      elapsed,
		"accept_per_s": float64(o.conns) / elapsed,
	})
	// Hold until the caller has measured and closes our stdin.
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	stopping.Store(true)
	emit(map[string]any{"event": "closing", "closed_early": closedEarly.Load()})
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

// closeAndDrain runs the closing handshake and waits for the server to end
// TCP first (RFC 6455 §7.1.1), so TIME_WAIT stays on the server's side and
// the client's ephemeral ports come back at once.
func closeAndDrain(c *websocket.Conn) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait))
	_ = c.SetReadDeadline(time.Now().Add(closeWait))
	for {
		if _, _, err := c.NextReader(); err != nil {
			break
		}
	}
	_, _ = io.Copy(io.Discard, c.UnderlyingConn())
	_ = c.Close()
}

func accept(o options) error {
	d := dialer(0)
	d.ReadBufferSize = 4096
	var accepted, failed atomic.Int64
	var stop atomic.Bool
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < o.dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				c, _, err := d.Dial(o.url, nil)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				accepted.Add(1)
				closeAndDrain(c)
			}
		}()
	}
	time.Sleep(o.warmup)
	a0, f0, t0 := accepted.Load(), failed.Load(), time.Now()
	mark("start")
	time.Sleep(o.duration)
	a1, f1, t1 := accepted.Load(), failed.Load(), time.Now()
	mark("end")
	stop.Store(true)
	wg.Wait()
	if a1-a0 == 0 {
		return fmt.Errorf("no connection accepted in the window; first error: %v", firstErr.Load())
	}
	secs := t1.Sub(t0).Seconds()
	first, _ := firstErr.Load().(string)
	emit(map[string]any{
		"event":         "result",
		"accepts":       a1 - a0,
		"seconds":       secs,
		"accepts_per_s": float64(a1-a0) / secs,
		"errors":        f1 - f0,
		"first_error":   first,
		"dialers":       o.dialers,
	})
	return nil
}

// reason names why a pipelined connection ended, without its addresses.
func reason(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return strings.TrimSpace(fmt.Sprintf("close %d %s", ce.Code, ce.Text))
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}

// pipelinedStats are the pipelined mode's counters, shared by its connections.
type pipelinedStats struct {
	received, bytes, sent, lost, closes, dialErrors atomic.Int64
	mu                                              sync.Mutex
	outcomes                                        map[string]int64
}

func (s *pipelinedStats) note(why string) {
	s.mu.Lock()
	s.outcomes[why]++
	s.mu.Unlock()
}

// pipelinedConn runs bursts on one connection until stop, or until the
// connection ends; returns false when it could not even dial.
func pipelinedConn(o options, d *websocket.Dialer, data []byte, kind int, s *pipelinedStats,
	stop *atomic.Bool) bool {
	c, _, err := d.Dial(o.url, nil)
	if err != nil {
		s.dialErrors.Add(1)
		s.note("dial: " + reason(err))
		return false
	}
	echoes := make(chan struct{}, o.burst)
	readErr := make(chan error, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_, r, err := c.NextReader()
			if err == nil {
				var n int64
				n, err = io.Copy(io.Discard, r)
				if err == nil && int(n) != o.size {
					err = fmt.Errorf("echo of %d bytes, sent %d", n, o.size)
				}
				if err == nil {
					s.received.Add(1)
					s.bytes.Add(n)
					echoes <- struct{}{}
					continue
				}
			}
			readErr <- err
			return
		}
	}()
	for !stop.Load() {
		// Write the whole burst back to back; the reader drains echoes meanwhile.
		wrote := 0
		var writeErr error
		for i := 0; i < o.burst; i++ {
			_ = c.SetWriteDeadline(time.Now().Add(echoWait))
			if writeErr = c.WriteMessage(kind, data); writeErr != nil {
				break
			}
			wrote++
			s.sent.Add(1)
		}
		got := 0
		var cause error
		for got < wrote && cause == nil {
			select {
			case <-echoes:
				got++
			case cause = <-readErr:
			case <-time.After(echoWait):
				cause = fmt.Errorf("no echo within %s", echoWait)
			}
		}
		if cause == nil && writeErr != nil {
			// Every echo of what went out came back, but the write failed: wait
			// briefly for the reader's account of why (a close frame, say).
			select {
			case cause = <-readErr:
			case <-time.After(closeWait):
				cause = writeErr
			}
		}
		if cause != nil {
			s.lost.Add(int64(wrote - got))
			s.closes.Add(1)
			s.note(reason(cause))
			_ = c.Close()
			<-readerDone
			return true
		}
	}
	closeConn(c, readerDone)
	return true
}

func pipelined(o options) error {
	o.binary = true
	data, kind := payload(o)
	d := dialer(o.size)
	s := &pipelinedStats{outcomes: map[string]int64{}}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := 0; i < o.conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A connection the server ends is redialled, so the window keeps its load.
			for !stop.Load() {
				if !pipelinedConn(o, d, data, kind, s, &stop) {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(o.warmup)
	m0, b0, t0 := s.received.Load(), s.bytes.Load(), time.Now()
	mark("start")
	time.Sleep(o.duration)
	m1, b1, t1 := s.received.Load(), s.bytes.Load(), time.Now()
	mark("end")
	stop.Store(true)
	wg.Wait()
	if s.received.Load() == 0 && s.dialErrors.Load() > 0 {
		return fmt.Errorf("no echo at all: %v", s.outcomes)
	}
	secs := t1.Sub(t0).Seconds()
	emit(map[string]any{
		"event":         "result",
		"messages":      m1 - m0,
		"bytes":         b1 - b0,
		"seconds":       secs,
		"msgs_per_s":    float64(m1-m0) / secs,
		"mbytes_per_s":  float64(b1-b0) / secs / 1e6,
		"sent":          s.sent.Load(),
		"echoed":        s.received.Load(),
		"lost":          s.lost.Load(),
		"closes":        s.closes.Load(),
		"dial_errors":   s.dialErrors.Load(),
		"outcomes":      s.outcomes,
		"conns":         o.conns,
		"burst":         o.burst,
		"message_bytes": o.size,
	})
	return nil
}

// storm is a reconnect storm: o.count clients through o.dialers concurrent
// dialers, each upgrading, sending one text message and waiting for its
// echo before it closes. The window is the whole storm.
func storm(o options) error {
	d := dialer(0)
	d.ReadBufferSize = 4096
	d.HandshakeTimeout = 30 * time.Second
	var next, failed atomic.Int64
	var firstErr atomic.Value
	lat := make([]time.Duration, o.count)
	var wg sync.WaitGroup
	payload := []byte("storm")
	mark("start")
	t0 := time.Now()
	for w := 0; w < o.dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(o.count) {
					return
				}
				start := time.Now()
				c, _, err := d.Dial(o.url, nil)
				if err == nil {
					_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
					err = c.WriteMessage(websocket.TextMessage, payload)
					if err == nil {
						var data []byte
						_, data, err = c.ReadMessage()
						if err == nil && !bytes.Equal(data, payload) {
							err = errors.New("the echo differs")
						}
					}
					if err == nil {
						lat[i] = time.Since(start)
					}
					closeAndDrain(c)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					lat[i] = -1
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	mark("end")
	ok := make([]time.Duration, 0, o.count)
	for _, l := range lat {
		if l >= 0 {
			ok = append(ok, l)
		}
	}
	if len(ok) == 0 {
		return fmt.Errorf("no client was echoed; first error: %v", firstErr.Load())
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i] < ok[j] })
	ms := func(q float64) float64 {
		return float64(ok[int(q*float64(len(ok)-1))].Microseconds()) / 1e3
	}
	first, _ := firstErr.Load().(string)
	emit(map[string]any{
		"event":       "result",
		"clients":     o.count,
		"echoed":      len(ok),
		"errors":      failed.Load(),
		"first_error": first,
		"dialers":     o.dialers,
		"storm_s":     secs,
		"p50_ms":      ms(0.50),
		"p99_ms":      ms(0.99),
	})
	return nil
}
