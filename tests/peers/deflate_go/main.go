// Command deflate_go is an interop peer for the permessage-deflate tests
// (tests/deflate_interop_test.ts): an echo server or a scripted client on
// gorilla/websocket or coder/websocket (nhooyr.io/websocket), both from
// Debian, with compression on.
//
// Usage:
//
//	deflate_go -lib gorilla|coder -role server [-takeover]
//	deflate_go -lib gorilla|coder -role client [-takeover] -url URL < steps.json
//
// -takeover asks coder/websocket for CompressionContextTakeover (default:
// CompressionNoContextTakeover); gorilla/websocket implements only no
// context takeover, so it refuses -takeover.
//
// It prints one JSON object per line on stdout:
// listening {port}, open {extensions}, message {binary, data}, close {code,
// reason}, error {message}. The server echoes every message with its type;
// the client sends each step ({"text": S} or {"binary": B64}), waits for its
// echo, then closes with 1000.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/websocket"
	coder "nhooyr.io/websocket"
)

// readLimit is well above the largest test message (coder's default is 32 KiB).
const readLimit = 64 << 20

// timeout bounds a whole client run.
const timeout = 30 * time.Second

func emit(v map[string]any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func fail(err error) {
	emit(map[string]any{"event": "error", "message": err.Error()})
	os.Exit(1)
}

// step is one message the client sends.
type step struct {
	Text   *string `json:"text"`
	Binary *string `json:"binary"`
}

func message(binary bool, data []byte) map[string]any {
	if binary {
		return map[string]any{"event": "message", "binary": true,
			"data": base64.StdEncoding.EncodeToString(data)}
	}
	return map[string]any{"event": "message", "binary": false, "data": string(data)}
}

func main() {
	lib := flag.String("lib", "gorilla", "gorilla or coder")
	role := flag.String("role", "server", "server or client")
	takeover := flag.Bool("takeover", false, "coder: CompressionContextTakeover")
	url := flag.String("url", "", "client: the server's URL")
	flag.Parse()
	if *lib == "gorilla" && *takeover {
		fail(errors.New("gorilla/websocket implements only no context takeover"))
	}
	mode := coder.CompressionNoContextTakeover
	if *takeover {
		mode = coder.CompressionContextTakeover
	}
	switch {
	case *role == "server":
		serve(*lib, mode)
	case *role == "client" && *lib == "gorilla":
		gorillaClient(*url)
	case *role == "client" && *lib == "coder":
		coderClient(*url, mode)
	default:
		fail(fmt.Errorf("unknown -lib %q or -role %q", *lib, *role))
	}
}

func readSteps() []step {
	var steps []step
	if err := json.NewDecoder(os.Stdin).Decode(&steps); err != nil {
		fail(fmt.Errorf("reading steps: %w", err))
	}
	return steps
}

func (s step) payload() (bool, []byte) {
	if s.Binary != nil {
		b, err := base64.StdEncoding.DecodeString(*s.Binary)
		if err != nil {
			fail(err)
		}
		return true, b
	}
	return false, []byte(*s.Text)
}

func serve(lib string, mode coder.CompressionMode) {
	up := websocket.Upgrader{
		EnableCompression: true,
		CheckOrigin:       func(*http.Request) bool { return true },
	}
	http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		offered := r.Header.Get("Sec-WebSocket-Extensions")
		if lib == "gorilla" {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				emit(map[string]any{"event": "error", "message": err.Error()})
				return
			}
			defer c.Close()
			emit(map[string]any{"event": "open", "offered": offered})
			for {
				kind, data, err := c.ReadMessage()
				if err != nil {
					closed(err)
					return
				}
				if err := c.WriteMessage(kind, data); err != nil {
					emit(map[string]any{"event": "error", "message": err.Error()})
					return
				}
			}
		}
		c, err := coder.Accept(w, r, &coder.AcceptOptions{
			InsecureSkipVerify: true,
			CompressionMode:    mode,
		})
		if err != nil {
			emit(map[string]any{"event": "error", "message": err.Error()})
			return
		}
		defer c.Close(coder.StatusInternalError, "")
		c.SetReadLimit(readLimit)
		emit(map[string]any{"event": "open", "offered": offered})
		for {
			kind, data, err := c.Read(context.Background())
			if err != nil {
				closed(err)
				return
			}
			if err := c.Write(context.Background(), kind, data); err != nil {
				emit(map[string]any{"event": "error", "message": err.Error()})
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	emit(map[string]any{"event": "listening", "port": ln.Addr().(*net.TCPAddr).Port})
	go func() {
		// The test stops the peer by killing it; stdin ending also stops it.
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = ln.Close()
	}()
	if err := http.Serve(ln, nil); err != nil && !errors.Is(err, net.ErrClosed) {
		fail(err)
	}
}

// closed prints how a server's connection ended: the close code the client sent, or the error.
func closed(err error) {
	var ge *websocket.CloseError
	if errors.As(err, &ge) {
		emit(map[string]any{"event": "close", "code": ge.Code, "reason": ge.Text})
		return
	}
	if code := coder.CloseStatus(err); code != -1 {
		var ce coder.CloseError
		errors.As(err, &ce)
		emit(map[string]any{"event": "close", "code": int(code), "reason": ce.Reason})
		return
	}
	emit(map[string]any{"event": "error", "message": err.Error()})
}

func gorillaClient(url string) {
	steps := readSteps()
	d := websocket.Dialer{EnableCompression: true, HandshakeTimeout: timeout}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		fail(err)
	}
	emit(map[string]any{"event": "open", "extensions": resp.Header.Get("Sec-WebSocket-Extensions")})
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	for _, s := range steps {
		binary, data := s.payload()
		kind := websocket.TextMessage
		if binary {
			kind = websocket.BinaryMessage
		}
		if err := c.WriteMessage(kind, data); err != nil {
			fail(err)
		}
		got, echo, err := c.ReadMessage()
		if err != nil {
			fail(err)
		}
		emit(message(got == websocket.BinaryMessage, echo))
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(timeout)); err != nil {
		fail(err)
	}
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			closed(err)
			break
		}
	}
	_ = c.Close()
}

func coderClient(url string, mode coder.CompressionMode) {
	steps := readSteps()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{CompressionMode: mode})
	if err != nil {
		fail(err)
	}
	c.SetReadLimit(readLimit)
	emit(map[string]any{"event": "open", "extensions": resp.Header.Get("Sec-WebSocket-Extensions")})
	for _, s := range steps {
		binary, data := s.payload()
		kind := coder.MessageText
		if binary {
			kind = coder.MessageBinary
		}
		if err := c.Write(ctx, kind, data); err != nil {
			fail(err)
		}
		got, echo, err := c.Read(ctx)
		if err != nil {
			fail(err)
		}
		emit(message(got == coder.MessageBinary, echo))
	}
	// Close returns nil once the server's close frame has come back; the
	// test reads that frame's code off the wire.
	if err := c.Close(coder.StatusNormalClosure, ""); err != nil {
		fail(err)
	}
	emit(map[string]any{"event": "close", "code": int(coder.StatusNormalClosure), "reason": ""})
}
