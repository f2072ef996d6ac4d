/**
 * The help text of the flags both programs share (`COMMON_FLAGS` in flags.ts),
 * which each program's `--help` ends with.
 *
 * @module
 */

/** Help text for the shared flags, with the program's own heartbeat defaults. */
export function commonHelp(defaults: { ping: string; pong: string }): string {
  return `TCP keepalive (Go's defaults: on, idle 15s, interval 15s, count 9):
  --keepalive D            Go's Dialer.KeepAlive: 0 = defaults, >0 = idle only,
                           <0 = off (e.g. --keepalive 30s gives 30s/15s/9)
  --keepalive-idle D       TCP_KEEPIDLE   (0 = default 15s, <0 = leave the OS value)
  --keepalive-interval D   TCP_KEEPINTVL  (0 = default 15s, <0 = leave the OS value)
  --keepalive-count N      TCP_KEEPCNT    (0 = default 9,   <0 = leave the OS value)
  --no-keepalive           turn SO_KEEPALIVE off
  --print-keepalive        print the resolved policy, the kernel's values, Go's
                           defaults and the worst-case detection time; then exit
  --tcp-user-timeout D     TCP_USER_TIMEOUT: fail when sent data stays unacknowledged
                           this long (default: off, the OS value)

WebSocket:
  --ping-interval D        send a ping this often; 0 = off (default ${defaults.ping})
  --pong-timeout D         close (1011 "pong timeout") when nothing arrives for D; 0 = off
                           (default ${defaults.pong}); must be longer than --ping-interval
  --stall-timeout D        close (1008, send-overflow) when the peer reads nothing of ours
                           for D while we have data to send; 0 = never (default 30s)
  --max-message-size B     largest message accepted, in bytes; KiB/MiB suffixes
                           allowed (default 16MiB); larger ones get close 1009
  --handshake-timeout D    bound on the opening handshake (default 10s)
  --compression            permessage-deflate (RFC 7692): the client offers it, the
                           server agrees when offered (default off; costs CPU and, with
                           context takeover, ~300 KiB of zlib memory per connection)

Fault injection (to see how your peer copes; each is logged as a "fault" event):
  --no-pong                do not answer pings (a peer whose program is stuck)
  --freeze-after D         D after opening, stop reading and writing but keep the
                           socket open (a hung program: its kernel still answers TCP)
  --drop-after D           D after opening, end TCP without a close frame
  --drop-mode fin|rst      how --drop-after ends TCP: fin (default, as a crash would)
                           or rst (a reset, as a middlebox or a lost host would)

Output:
  --log-format F           text (logfmt, default) or json: one event per line on stderr
  -h, --help               show this help
  -V, --version            print the version and exit

Durations use Go's syntax: 500ms, 15s, 1m30s. A bare 0 is allowed.`;
}
