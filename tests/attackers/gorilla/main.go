// Command gorilla is the Go side of tests/attack_test.ts and
// tests/fast_client_test.ts: honest clients on gorilla/websocket (a library
// this project did not write) and raw-socket floods, built offline from
// Debian's Go and gorilla (GOPATH mode, as bench/loadgen is).
//
// Modes (one JSON object per line on stdout; a usage or dial error goes to
// stderr with exit 1):
//
//	pipeline -url U -count N -size B    one gorilla client writes N binary messages
//	                                    back to back while reading every echo, checks
//	                                    each byte for byte (an 8-byte sequence number,
//	                                    then bytes from a PRNG seeded by it), then
//	                                    closes with 1000
//	flood -url U -conns N               raw sockets pipeline 1-byte messages as fast as
//	                                    they can while reading their echoes, until
//	                                    stdin ends (or -duration)
//	steady -url U -conns N -interval D -duration T
//	                                    gorilla clients each send one message every D
//	                                    and wait for its echo, for T from their own
//	                                    upgrade; worst round trip and when it was
//	serve [-compression]                gorilla's echo server, the control peer
//	                                    (-compression: permessage-deflate, in gorilla's
//	                                    only mode, no context takeover)
//
// Every connection prints {"event":"open","local":"127.0.0.1:P"} as soon as it
// is upgraded, so the test can find it in the server's log by its address.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// closeWait bounds the wait for the server's answer to our close frame.
const closeWait = 5 * time.Second

type options struct {
	url      string
	count    int
	size     int
	conns    int
	interval time.Duration
	duration time.Duration
	timeout  time.Duration
	addr     string
	batch    int
	compress bool
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: gorilla pipeline|flood|steady|serve [flags]"))
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	var o options
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:8080/echo", "server URL")
	fs.IntVar(&o.count, "count", 64, "pipeline: messages")
	fs.IntVar(&o.size, "size", 1<<20, "pipeline, steady: message size in bytes")
	fs.IntVar(&o.conns, "conns", 1, "flood, steady: connections")
	fs.DurationVar(&o.interval, "interval", 500*time.Millisecond, "steady: time between sends")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "steady, flood: how long")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "pipeline: bound on the whole run")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:0", "serve: address")
	fs.BoolVar(&o.compress, "compression", false, "serve: negotiate permessage-deflate (gorilla's only mode: no context takeover)")
	fs.IntVar(&o.batch, "batch", 64<<10/7, "flood: messages per write (the default fills 64 KiB)")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch mode {
	case "pipeline":
		err = pipeline(o)
	case "flood":
		err = flood(o)
	case "steady":
		err = steady(o)
	case "serve":
		err = serve(o)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gorilla:", err)
	os.Exit(1)
}

var emitMu sync.Mutex

func emit(v map[string]any) {
	emitMu.Lock()
	defer emitMu.Unlock()
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

func dialer() *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   64 << 10,
		WriteBufferSize:  64 << 10,
	}
}

// closeCode names how a read or write ended: the close code the server sent,
// or -1 when the error was not a close frame.
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ---------------------------------------------------------------------------
// pipeline

// message fills buf with message number seq: the sequence number (big
// endian), then bytes from xorshift64* seeded by it, so every message differs
// and any lost, reordered or corrupted byte shows.
func message(buf []byte, seq uint64) {
	var head [8]byte
	binary.BigEndian.PutUint64(head[:], seq)
	copy(buf, head[:])
	x := seq*0x9E3779B97F4A7C15 + 1
	for i := 8; i < len(buf); i += 8 {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], x*0x2545F4914F6CDD1D)
		copy(buf[i:], w[:])
	}
}

func pipeline(o options) error {
	if o.size < 8 {
		return errors.New("-size must be at least 8 (the sequence number)")
	}
	c, _, err := dialer().Dial(o.url, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", o.url, err)
	}
	defer c.Close()
	emit(map[string]any{"event": "open", "local": c.LocalAddr().String()})
	started := time.Now()
	deadline := started.Add(o.timeout)
	c.SetReadDeadline(deadline)
	c.SetWriteDeadline(deadline)

	var sent atomic.Int64
	writeErr := make(chan error, 1)
	go func() {
		buf := make([]byte, o.size)
		for i := 0; i < o.count; i++ {
			message(buf, uint64(i))
			if err := c.WriteMessage(websocket.BinaryMessage, buf); err != nil {
				writeErr <- err
				return
			}
			sent.Add(1)
		}
		writeErr <- nil
	}()

	want := make([]byte, o.size)
	received, mismatches, firstBad := 0, 0, -1
	var readErr error
	for received < o.count {
		kind, data, err := c.ReadMessage()
		if err != nil {
			readErr = err
			break
		}
		message(want, uint64(received))
		if kind != websocket.BinaryMessage || !bytes.Equal(data, want) {
			mismatches++
			if firstBad < 0 {
				firstBad = received
			}
		}
		received++
	}
	wErr := <-writeErr
	elapsed := time.Since(started)

	// Close with 1000 and read the server's answer (RFC 6455 §7.1.2).
	code, reason := -1, ""
	if readErr == nil {
		_ = c.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(closeWait))
		c.SetReadDeadline(time.Now().Add(closeWait))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					code, reason = ce.Code, ce.Text
				} else {
					reason = err.Error()
				}
				break
			}
		}
	} else {
		code = closeCode(readErr)
		var ce *websocket.CloseError
		if errors.As(readErr, &ce) {
			reason = ce.Text
		}
	}
	emit(map[string]any{
		"event":       "done",
		"local":       c.LocalAddr().String(),
		"sent":        sent.Load(),
		"received":    received,
		"mismatches":  mismatches,
		"first_bad":   firstBad,
		"read_error":  errText(readErr),
		"write_error": errText(wErr),
		"close_code":  code,
		"close_text":  reason,
		"ms":          elapsed.Milliseconds(),
	})
	return nil
}

// ---------------------------------------------------------------------------
// flood: raw sockets, so the writer is never slowed by a library

// rawDial connects to o.url and upgrades by hand; it returns the connection
// and a reader positioned after the 101 response.
func rawDial(rawURL string) (net.Conn, *bufio.Reader, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, nil, err
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		conn.Close()
		return nil, nil, err
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101") {
		conn.Close()
		return nil, nil, fmt.Errorf("upgrade refused: %q %v", strings.TrimSpace(status), err)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		if line == "\r\n" {
			break
		}
	}
	conn.SetReadDeadline(time.Time{})
	return conn, r, nil
}

// tinyFrames is n masked 1-byte binary messages, back to back.
func tinyFrames(n int) []byte {
	frame := []byte{0x82, 0x81, 0x11, 0x22, 0x33, 0x44, 'x' ^ 0x11}
	out := make([]byte, 0, n*len(frame))
	for i := 0; i < n; i++ {
		out = append(out, frame...)
	}
	return out
}

// maskedClose is a masked close frame with code 1000 (the mask key is zero).
var maskedClose = []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}

// readFrames reads server frames until a close frame, EOF or an error; it
// counts data frames and returns the close code (1005 for an empty close, -1
// when TCP ended without one).
func readFrames(r *bufio.Reader, echoed *atomic.Int64) (int, error) {
	var head [2]byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return -1, err
		}
		n := uint64(head[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(r, e[:]); err != nil {
				return -1, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(r, e[:]); err != nil {
				return -1, err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		op := head[0] & 0x0f
		if op == 0x8 {
			p := make([]byte, n)
			if _, err := io.ReadFull(r, p); err != nil {
				return -1, err
			}
			if len(p) < 2 {
				return 1005, nil
			}
			return int(binary.BigEndian.Uint16(p)), nil
		}
		if _, err := r.Discard(int(n)); err != nil {
			return -1, err
		}
		if op <= 0x2 && head[0]&0x80 != 0 {
			echoed.Add(1)
		}
	}
}

func flood(o options) error {
	type result struct {
		local  string
		sent   int64
		echoed atomic.Int64
		code   int
		err    error
	}
	results := make([]*result, o.conns)
	conns := make([]net.Conn, o.conns)
	readers := make([]*bufio.Reader, o.conns)
	for i := range conns {
		c, r, err := rawDial(o.url)
		if err != nil {
			return fmt.Errorf("dial %s: %w", o.url, err)
		}
		conns[i], readers[i] = c, r
		results[i] = &result{local: c.LocalAddr().String(), code: -1}
		emit(map[string]any{"event": "open", "local": results[i].local})
	}
	// Stop on stdin EOF (the test's signal) or after -duration.
	stop := make(chan struct{})
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }) }
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		halt()
	}()
	timer := time.AfterFunc(o.duration, halt)
	defer timer.Stop()

	perWrite := o.batch
	frames := tinyFrames(perWrite)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, res := conns[i], results[i]
			readDone := make(chan struct{})
			go func() {
				res.code, res.err = readFrames(readers[i], &res.echoed)
				close(readDone)
			}()
			// A write blocked by TCP flow control is unblocked at the stop.
			unblocked := make(chan struct{})
			go func() {
				select {
				case <-stop:
				case <-readDone:
				}
				c.SetWriteDeadline(time.Now())
				close(unblocked)
			}()
			stopped := false
		write:
			for {
				select {
				case <-stop:
					stopped = true
					break write
				case <-readDone:
					break write
				default:
				}
				if _, err := c.Write(frames); err != nil {
					// Unblocked by the stop mid-write, or the connection
					// failed: either way no whole frame can follow.
					break write
				}
				res.sent += int64(perWrite)
			}
			if stopped {
				<-unblocked
				c.SetWriteDeadline(time.Now().Add(closeWait))
				_, _ = c.Write(maskedClose)
			}
			select {
			case <-readDone:
			case <-time.After(closeWait):
				c.Close()
				<-readDone
			}
			c.Close()
		}(i)
	}
	wg.Wait()
	for _, res := range results {
		emit(map[string]any{
			"event":      "done",
			"local":      res.local,
			"sent":       res.sent,
			"echoed":     res.echoed.Load(),
			"close_code": res.code,
			"error":      errText(res.err),
		})
	}
	return nil
}

// ---------------------------------------------------------------------------
// steady: well-behaved clients that measure their round trips

func steady(o options) error {
	// Each client dials in its own goroutine and starts at once: a client
	// that waited idle for the others would not be well-behaved (it would
	// neither send nor answer pings meanwhile).
	var wg sync.WaitGroup
	dialErrs := make(chan error, o.conns)
	for i := 0; i < o.conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, _, err := dialer().Dial(o.url, nil)
			if err != nil {
				dialErrs <- fmt.Errorf("dial %s: %w", o.url, err)
				return
			}
			defer c.Close()
			emit(map[string]any{"event": "open", "local": c.LocalAddr().String()})
			start := time.Now()
			end := start.Add(o.duration)
			var rtts []time.Duration
			var worstAt time.Duration
			var failure error
			pad := strings.Repeat("s", max(0, o.size-32))
			next := start
			for seq := 0; time.Now().Before(end); seq++ {
				text := fmt.Sprintf("steady %d %d %s", i, seq, pad)
				sentAt := time.Now()
				// A reply later than the end of the run still counts, up to
				// closeWait; a reply that never comes counts as that long.
				c.SetReadDeadline(end.Add(closeWait))
				if err := c.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
					failure = err
					break
				}
				_, data, err := c.ReadMessage()
				rtt := time.Since(sentAt)
				if len(rtts) == 0 || rtt > worstOf(rtts) {
					worstAt = sentAt.Sub(start)
				}
				rtts = append(rtts, rtt)
				if err != nil {
					failure = err
					break
				}
				if string(data) != text {
					failure = fmt.Errorf("echo %d differs", seq)
					break
				}
				next = next.Add(o.interval)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				} else {
					next = time.Now()
				}
			}
			code, reason := -1, ""
			closedEarly := failure != nil
			if failure == nil {
				_ = c.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
					time.Now().Add(closeWait))
				c.SetReadDeadline(time.Now().Add(closeWait))
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						code = closeCode(err)
						if code < 0 {
							reason = err.Error()
						}
						break
					}
				}
			} else {
				code = closeCode(failure)
				reason = failure.Error()
			}
			sorted := append([]time.Duration(nil), rtts...)
			sort.Slice(sorted, func(a, b int) bool { return sorted[a] < sorted[b] })
			median := time.Duration(0)
			if len(sorted) > 0 {
				median = sorted[len(sorted)/2]
			}
			emit(map[string]any{
				"event":        "done",
				"local":        c.LocalAddr().String(),
				"samples":      len(rtts),
				"worst_ms":     float64(worstOf(rtts).Microseconds()) / 1000,
				"worst_at_ms":  worstAt.Milliseconds(),
				"median_ms":    float64(median.Microseconds()) / 1000,
				"closed_early": closedEarly,
				"close_code":   code,
				"error":        reason,
			})
		}(i)
	}
	wg.Wait()
	close(dialErrs)
	for err := range dialErrs {
		return err
	}
	return nil
}

func worstOf(rtts []time.Duration) time.Duration {
	worst := time.Duration(0)
	for _, r := range rtts {
		if r > worst {
			worst = r
		}
	}
	return worst
}

func max(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// ---------------------------------------------------------------------------
// serve: gorilla's echo server, to show the clients above are not the limit

func serve(o options) error {
	upgrader := websocket.Upgrader{
		ReadBufferSize:    64 << 10,
		WriteBufferSize:   64 << 10,
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: o.compress,
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	emit(map[string]any{"event": "listening", "addr": ln.Addr().String()})
	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
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
	return http.Serve(ln, nil)
}
