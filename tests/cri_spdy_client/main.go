// A test client for berth's CRI streaming server over SPDY/3.1, built on spdystream (the
// library Kubernetes' client-go speaks SPDY with), doing what client-go's remotecommand and
// portforward packages do: an HTTP upgrade naming the protocols, then a stream per standard
// stream (exec, attach) or a data/error pair per connection (port-forward).
//
// It prints one JSON object: what each stream carried, and the protocol the server chose.
//
//	berth-spdy-client -mode exec -stdin 'hello\n' -stdout -stderr URL
//	berth-spdy-client -mode portforward -port 8080 -send 'x' URL
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/spdystream"
)

type result struct {
	Protocol string            `json:"protocol"`
	Streams  map[string]string `json:"streams"`
	Status   json.RawMessage   `json:"status,omitempty"`
	Errors   []string          `json:"errors,omitempty"`
}

type lockedBuf struct {
	sync.Mutex
	b bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.Lock()
	defer l.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.Lock()
	defer l.Unlock()
	return l.b.String()
}

func dial(raw string, method string, protocols []string) (*spdystream.Connection, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", err
	}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return nil, "", err
	}
	req, err := http.NewRequest(method, raw, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	for _, p := range protocols {
		req.Header.Add("X-Stream-Protocol-Version", p)
	}
	if err := req.Write(conn); err != nil {
		return nil, "", err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, "", fmt.Errorf("upgrade refused: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if !strings.Contains(strings.ToLower(resp.Header.Get("Upgrade")), "spdy/3.1") ||
		!strings.Contains(strings.ToLower(resp.Header.Get("Connection")), "upgrade") {
		return nil, "", fmt.Errorf("not an SPDY/3.1 upgrade: %v", resp.Header)
	}
	if br.Buffered() > 0 {
		return nil, "", errors.New("the server sent frames before any stream was opened")
	}
	c, err := spdystream.NewConnection(conn, false)
	if err != nil {
		return nil, "", err
	}
	go c.Serve(spdystream.NoOpStreamHandler)
	return c, resp.Header.Get("X-Stream-Protocol-Version"), nil
}

func open(c *spdystream.Connection, h http.Header) (*spdystream.Stream, error) {
	s, err := c.CreateStream(h, nil, false)
	if err != nil {
		return nil, err
	}
	return s, s.WaitTimeout(10 * time.Second)
}

func openType(c *spdystream.Connection, typ string) (*spdystream.Stream, error) {
	h := http.Header{}
	h.Set("streamType", typ)
	return open(c, h)
}

// collect copies s into buf until EOF, or until buf holds until (then stop is closed).
func collect(s io.Reader, buf *lockedBuf, until string, stop chan struct{}, once *sync.Once) {
	tmp := make([]byte, 32*1024)
	for {
		n, err := s.Read(tmp)
		buf.Write(tmp[:n])
		if until != "" && strings.Contains(buf.String(), until) {
			once.Do(func() { close(stop) })
			return
		}
		if err != nil {
			return
		}
	}
}

func remotecommand(c *spdystream.Connection, proto string, res *result) error {
	var streams []string
	streams = append(streams, "error")
	if *stdinData != "" || *stdinFile != "" || *stdinOpen {
		streams = append(streams, "stdin")
	}
	if *stdout {
		streams = append(streams, "stdout")
	}
	if *stderr && !*tty {
		streams = append(streams, "stderr")
	}
	if *tty && (proto == "v3.channel.k8s.io" || proto == "v4.channel.k8s.io") {
		streams = append(streams, "resize")
	}
	opened := map[string]*spdystream.Stream{}
	for _, typ := range streams {
		s, err := openType(c, typ)
		if err != nil {
			return fmt.Errorf("stream %s: %v", typ, err)
		}
		opened[typ] = s
	}
	bufs := map[string]*lockedBuf{"stdout": {}, "stderr": {}, "error": {}}
	stop := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for _, typ := range []string{"stdout", "stderr", "error"} {
		if s, ok := opened[typ]; ok {
			wg.Add(1)
			go func(typ string, s *spdystream.Stream) {
				defer wg.Done()
				u := ""
				if typ == "stdout" {
					u = *until
				}
				collect(s, bufs[typ], u, stop, &once)
			}(typ, s)
		}
	}
	if s, ok := opened["resize"]; ok && *resize != "" {
		var w, h int
		if _, err := fmt.Sscanf(*resize, "%dx%d", &w, &h); err != nil {
			return err
		}
		if err := json.NewEncoder(s).Encode(map[string]int{"Width": w, "Height": h}); err != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond) // the resize lands before the command reads the size
	}
	if s, ok := opened["stdin"]; ok {
		data := []byte(unescape(*stdinData))
		if *stdinFile != "" {
			var err error
			if data, err = os.ReadFile(*stdinFile); err != nil {
				return err
			}
		}
		if _, err := s.Write(data); err != nil {
			return err
		}
		if !*stdinOpen {
			s.Close()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-stop:
	case <-time.After(*timeout):
		res.Errors = append(res.Errors, "timed out")
	}
	for typ, b := range bufs {
		if _, ok := opened[typ]; ok {
			res.Streams[typ] = b.String()
		}
	}
	if proto == "v4.channel.k8s.io" && json.Valid([]byte(bufs["error"].String())) {
		res.Status = json.RawMessage(bufs["error"].String())
	}
	return nil
}

func portforward(c *spdystream.Connection, res *result) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, port := range strings.Split(*ports, ",") {
		h := http.Header{}
		h.Set("port", port)
		if !*noRequestID {
			h.Set("requestID", fmt.Sprint(i))
		}
		h.Set("streamType", "error")
		errS, err := open(c, h)
		if err != nil {
			return fmt.Errorf("error stream for %s: %v", port, err)
		}
		h = http.Header{}
		h.Set("port", port)
		if !*noRequestID {
			h.Set("requestID", fmt.Sprint(i))
		}
		h.Set("streamType", "data")
		dataS, err := open(c, h)
		if err != nil {
			return fmt.Errorf("data stream for %s: %v", port, err)
		}
		wg.Add(1)
		go func(port string, dataS, errS *spdystream.Stream) {
			defer wg.Done()
			var d, e lockedBuf
			stop := make(chan struct{})
			var once sync.Once
			var inner sync.WaitGroup
			inner.Add(2)
			go func() { defer inner.Done(); collect(dataS, &d, *until, stop, &once) }()
			go func() { defer inner.Done(); collect(errS, &e, "", stop, &once) }()
			if *send != "" {
				dataS.Write([]byte(unescape(*send)))
			}
			done := make(chan struct{})
			go func() { inner.Wait(); close(done) }()
			select {
			case <-done:
			case <-stop:
			case <-time.After(*timeout):
				mu.Lock()
				res.Errors = append(res.Errors, "timed out on "+port)
				mu.Unlock()
			}
			dataS.Close()
			mu.Lock()
			res.Streams["data:"+port] = d.String()
			res.Streams["error:"+port] = e.String()
			mu.Unlock()
		}(port, dataS, errS)
	}
	wg.Wait()
	return nil
}

func unescape(s string) string {
	return strings.NewReplacer(`\n`, "\n", `\t`, "\t").Replace(s)
}

var (
	mode        = flag.String("mode", "exec", "exec, attach or portforward")
	method      = flag.String("method", "POST", "the upgrade request's method")
	protocols   = flag.String("protocols", "v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io", "offered, in order")
	stdinData   = flag.String("stdin", "", "open stdin and send this (\\n for a newline), then close it")
	stdinFile   = flag.String("stdin-file", "", "open stdin and send this file's bytes, then close it")
	stdinOpen   = flag.Bool("stdin-open", false, "open stdin and keep it open")
	stdout      = flag.Bool("stdout", false, "open a stdout stream")
	stderr      = flag.Bool("stderr", false, "open a stderr stream")
	tty         = flag.Bool("tty", false, "the request has a tty (no stderr stream, a resize stream)")
	resize      = flag.String("resize", "", "WxH to send on the resize stream")
	until       = flag.String("until", "", "stop once stdout (or a port's data) holds this")
	ports       = flag.String("port", "", "port-forward: the ports, comma-separated")
	send        = flag.String("send", "", "port-forward: what to send on each data stream")
	noRequestID = flag.Bool("no-request-id", false, "port-forward: pair streams by ID, as old clients")
	timeout     = flag.Duration("timeout", 20*time.Second, "give up after")
)

func main() {
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: berth-spdy-client [flags] URL")
		os.Exit(2)
	}
	offered := strings.Split(*protocols, ",")
	if *protocols == "" {
		offered = nil
	}
	if *mode == "portforward" && *protocols == flag.Lookup("protocols").DefValue {
		offered = []string{"portforward.k8s.io"}
	}
	c, proto, err := dial(flag.Arg(0), *method, offered)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	res := &result{Protocol: proto, Streams: map[string]string{}}
	if *mode == "portforward" {
		err = portforward(c, res)
	} else {
		err = remotecommand(c, proto, res)
	}
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	c.Close()
	json.NewEncoder(os.Stdout).Encode(res)
}
