// Command gorilla_echo is a benchmark peer: gorilla/websocket's echo server
// (as in gorilla's examples/echo), on Debian's golang-go and
// golang-github-gorilla-websocket-dev.
//
// Usage: gorilla_echo [-addr 127.0.0.1:0] [-compression]
//
// -compression sets EnableCompression on the upgrader: permessage-deflate
// for clients that offer it, in gorilla's only mode (no context takeover
// either way), every message it writes compressed.
//
// It prints one JSON line {"event":"listening","addr":"127.0.0.1:PORT"} on
// stdout and exits when stdin ends. Go's listener turns TCP keepalive on for
// every accepted socket with its default 15 s period, so this peer carries
// the keepalive our server matches.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"github.com/gorilla/websocket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	compression := flag.Bool("compression", false, "negotiate permessage-deflate")
	flag.Parse()
	// gorilla's defaults (4 KiB buffers, reused from the HTTP server's), as its example has them.
	up := websocket.Upgrader{
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: *compression,
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
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gorilla_echo:", err)
		os.Exit(1)
	}
	line, _ := json.Marshal(map[string]string{"event": "listening", "addr": ln.Addr().String()})
	fmt.Println(string(line))
	go func() {
		// The benchmark stops the peer by closing its stdin.
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = ln.Close()
	}()
	if err := http.Serve(ln, nil); err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintln(os.Stderr, "gorilla_echo:", err)
		os.Exit(1)
	}
}
