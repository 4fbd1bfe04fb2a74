// Command issuance-load is a lean load generator for the control plane's
// Identity API (bench/ca-issuance.ts), written with grpc-go so that the
// benchmark measures the server and not a Node client sharing its cores. It
// needs no generated code: requests are pre-encoded protobuf messages sent
// through a pass-through codec, and responses are kept as raw bytes.
//
//	issuance-load --addr HOST:PORT --ca ROOTS.pem --cert CHAIN.pem --key KEY.pem
//	    --server-id SPIFFE_ID --method /package.Service/Method --requests FILE
//	    (--concurrency N | --rate R) [--conns 8] [--duration 5s] [--warmup 1s]
//	    [--sample-out FILE]
//	issuance-load --consul-leaf http://HOST:PORT [--leaf-prefix NAME]
//	    (--concurrency N | --rate R) [--duration 5s] [--warmup 1s]
//	issuance-load --version
//
// With --consul-leaf it drives Consul's leaf-certificate API instead (the
// comparison of bench/vs-consul.ts): each call is a GET of
// /v1/agent/connect/ca/leaf/<prefix>-<n> with a name never asked before, so
// the agent makes a new key and CSR and its servers sign a new certificate
// (a repeated name would be answered from the agent's cache). A call succeeds
// when the answer is 200 and carries a PEM certificate for that service.
//
// --requests and --sample-out hold messages each prefixed by its length (4
// bytes, big-endian). Requests are used round-robin, and calls are spread
// round-robin over --conns gRPC connections. --concurrency runs a closed loop
// (N goroutines issuing calls back to back); --rate an open loop (R calls/s
// scheduled evenly, each in its own goroutine, latency measured from its
// scheduled start, so a slow server cannot hide queueing). The warm-up is a
// closed loop (at --concurrency, or one call per connection with --rate) whose
// results are discarded.
//
// It prints one JSON object:
//
//	{"count":N,"errors":N,"firstError":"..."|null,"elapsedMs":X,"p50Ms":X,"p99Ms":X,"maxMs":X,"cpuMs":X}
//
// count is the successful calls of the measured period; cpuMs the user+system
// CPU this process used during it. Exit codes: 0 the run completed (failed
// calls are counted in the JSON), 1 the server could not be reached or failed
// the TLS checks, 2 bad flags or unreadable files (the message names them).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
)

const (
	grpcModule = "google.golang.org/grpc"
	// callTimeout bounds each call, like the agent's default deadline.
	callTimeout = 15 * time.Second
	// connectTimeout bounds the wait for every connection to be ready.
	connectTimeout = 10 * time.Second
	maxSamples     = 20
)

type options struct {
	addr, caPath, certPath, keyPath, serverID, method, requestsPath, sampleOut string
	consulLeaf, leafPrefix                                                     string
	conns, concurrency                                                         int
	rate                                                                       float64
	duration, warmup                                                           time.Duration
}

type result struct {
	Count      int     `json:"count"`
	Errors     int64   `json:"errors"`
	FirstError *string `json:"firstError"`
	ElapsedMs  float64 `json:"elapsedMs"`
	P50Ms      float64 `json:"p50Ms"`
	P99Ms      float64 `json:"p99Ms"`
	MaxMs      float64 `json:"maxMs"`
	CPUMs      float64 `json:"cpuMs"`
}

// usageError is a bad flag or an unreadable file: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, version, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err.Error() != "" {
			fmt.Fprintf(stderr, "issuance-load: %v\n", err)
		}
		return 2
	}
	if version {
		fmt.Fprintf(stdout, "issuance-load grpc-go %s\n", grpcVersion())
		return 0
	}
	res, err := load(o)
	if err != nil {
		fmt.Fprintf(stderr, "issuance-load: %v\n", err)
		var usage usageError
		if errors.As(err, &usage) {
			return 2
		}
		return 1
	}
	line, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(line))
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, bool, error) {
	var o options
	flags := flag.NewFlagSet("issuance-load", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.StringVar(&o.addr, "addr", "", "HOST:PORT of the control plane")
	flags.StringVar(&o.caPath, "ca", "", "PEM file: the roots the server certificate must chain to")
	flags.StringVar(&o.certPath, "cert", "", "PEM file: the client certificate chain, leaf first")
	flags.StringVar(&o.keyPath, "key", "", "PEM file: the client private key")
	flags.StringVar(&o.serverID, "server-id", "", "the one URI SAN (SPIFFE ID) the server certificate must carry")
	flags.StringVar(&o.method, "method", "", "the unary method, /package.Service/Method")
	flags.StringVar(&o.requestsPath, "requests", "", "file of length-prefixed (4 bytes, big-endian) protobuf requests")
	flags.IntVar(&o.conns, "conns", 8, "gRPC connections; calls are spread round-robin")
	flags.IntVar(&o.concurrency, "concurrency", 0, "closed loop: goroutines issuing calls back to back")
	flags.Float64Var(&o.rate, "rate", 0, "open loop: calls per second, scheduled evenly")
	flags.DurationVar(&o.duration, "duration", 5*time.Second, "measured period")
	flags.DurationVar(&o.warmup, "warmup", time.Second, "closed-loop warm-up before measuring, results discarded")
	flags.StringVar(&o.sampleOut, "sample-out", "", "write the first successful responses (up to 20) here, length-prefixed")
	flags.StringVar(&o.consulLeaf, "consul-leaf", "", "drive Consul's leaf-certificate API at this base URL (http://HOST:PORT) instead of gRPC")
	flags.StringVar(&o.leafPrefix, "leaf-prefix", "bench-leaf", "--consul-leaf: service names are <prefix>-<n>, new for every call")
	version := flags.Bool("version", false, "print the grpc-go version and exit")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, false, err
		}
		return o, false, usageError{} // the flag package has printed why
	}
	if *version {
		return o, true, nil
	}
	if flags.NArg() > 0 {
		return o, false, usagef("unexpected argument %q", flags.Arg(0))
	}
	var missing []string
	required := []struct{ name, value string }{
		{"--addr", o.addr}, {"--ca", o.caPath}, {"--cert", o.certPath}, {"--key", o.keyPath},
		{"--server-id", o.serverID}, {"--method", o.method}, {"--requests", o.requestsPath},
	}
	if o.consulLeaf != "" {
		required = []struct{ name, value string }{{"--leaf-prefix", o.leafPrefix}}
	}
	for _, f := range required {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	switch {
	case len(missing) > 0:
		return o, false, usagef("missing %s (see --help)", strings.Join(missing, ", "))
	case o.consulLeaf != "" && !strings.HasPrefix(o.consulLeaf, "http://"):
		return o, false, usagef("--consul-leaf %q is not http://HOST:PORT", o.consulLeaf)
	case o.consulLeaf == "" && (!strings.HasPrefix(o.method, "/") || strings.Count(o.method, "/") != 2):
		return o, false, usagef("--method %q is not /package.Service/Method", o.method)
	case (o.concurrency > 0) == (o.rate > 0):
		return o, false, usagef("give exactly one of --concurrency N (closed loop) or --rate R (open loop), both > 0")
	case o.concurrency < 0 || o.rate < 0:
		return o, false, usagef("--concurrency and --rate must be > 0")
	case o.conns < 1:
		return o, false, usagef("--conns must be >= 1, got %d", o.conns)
	case o.duration <= 0:
		return o, false, usagef("--duration must be > 0, got %s", o.duration)
	case o.warmup < 0:
		return o, false, usagef("--warmup must be >= 0, got %s", o.warmup)
	case o.rate > 0 && o.rate*o.duration.Seconds() < 1:
		return o, false, usagef("--rate %g for --duration %s schedules no call", o.rate, o.duration)
	}
	return o, false, nil
}

// caller issues one call and says whether it succeeded, recording failures
// and samples in the phase.
type caller interface {
	call(p *phase) bool
}

// load reads the inputs, connects, warms up, measures and returns the result.
func load(o options) (*result, error) {
	var l caller
	if o.consulLeaf != "" {
		leaf, err := newLeafLoader(o.consulLeaf, o.leafPrefix, max(o.concurrency, 8))
		if err != nil {
			return nil, err
		}
		l = leaf
	} else {
		g, closeAll, err := grpcLoader(o)
		if err != nil {
			return nil, err
		}
		defer closeAll()
		l = g
	}
	if o.warmup > 0 {
		warm := o.concurrency
		if warm == 0 {
			warm = o.conns
		}
		closedLoop(l, &phase{}, warm, o.warmup)
	}

	measured := &phase{sampleMax: maxSamples}
	cpu0 := cpuMs()
	start := time.Now()
	var latencies []float64
	if o.concurrency > 0 {
		latencies = closedLoop(l, measured, o.concurrency, o.duration)
	} else {
		latencies = openLoop(l, measured, o.rate, o.duration)
	}
	elapsed := time.Since(start)
	cpu := cpuMs() - cpu0

	if o.sampleOut != "" {
		if err := writeMessages(o.sampleOut, measured.samples); err != nil {
			return nil, usagef("--sample-out: %v", err)
		}
	}
	slices.Sort(latencies)
	res := &result{
		Count:     len(latencies),
		Errors:    measured.errors.Load(),
		ElapsedMs: round3(float64(elapsed) / float64(time.Millisecond)),
		P50Ms:     round3(percentile(latencies, 50)),
		P99Ms:     round3(percentile(latencies, 99)),
		MaxMs:     round3(percentile(latencies, 100)),
		CPUMs:     round3(cpu),
	}
	if first := measured.firstError.Load(); first != nil {
		res.FirstError = first
	}
	return res, nil
}

// grpcLoader connects --conns gRPC connections and waits until they are ready.
func grpcLoader(o options) (*loader, func(), error) {
	requests, err := readMessages(o.requestsPath, "--requests")
	if err != nil {
		return nil, nil, err
	}
	creds, err := clientTLS(o)
	if err != nil {
		return nil, nil, err
	}
	l := &loader{method: o.method, requests: requests}
	closeAll := func() {
		for _, conn := range l.conns {
			conn.Close()
		}
	}
	for range o.conns {
		conn, err := grpc.NewClient(o.addr,
			grpc.WithTransportCredentials(credentials.NewTLS(creds)),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		if err != nil {
			closeAll()
			return nil, nil, usagef("--addr %q: %v", o.addr, err)
		}
		l.conns = append(l.conns, conn)
	}
	if err := l.connect(o.addr); err != nil {
		closeAll()
		return nil, nil, err
	}
	return l, closeAll, nil
}

// clientTLS is mTLS with the client chain and key; the server is checked by
// verifyServer instead of by host name (the control plane is known by its
// SPIFFE ID, like agent/identity/cp-client.ts does).
func clientTLS(o options) (*tls.Config, error) {
	caPEM, err := os.ReadFile(o.caPath)
	if err != nil {
		return nil, usagef("--ca: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, usagef("--ca %s: no PEM certificate in it", o.caPath)
	}
	certPEM, err := os.ReadFile(o.certPath)
	if err != nil {
		return nil, usagef("--cert: %v", err)
	}
	keyPEM, err := os.ReadFile(o.keyPath)
	if err != nil {
		return nil, usagef("--key: %v", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, usagef("--cert %s with --key %s: %v", o.certPath, o.keyPath, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		// The default verification (chain + host name) is replaced by
		// VerifyPeerCertificate: chain to --ca and the exact SPIFFE ID.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verifyServer(roots, o.serverID),
		// A fixed SNI, as the agent sends, rather than nothing for an IP address.
		ServerName: "mesh-controlplane",
		MinVersion: tls.VersionTLS12,
	}, nil
}

// verifyServer accepts a server chain whose leaf chains to roots (serverAuth)
// and carries exactly one URI SAN, serverID.
func verifyServer(roots *x509.CertPool, serverID string) func([][]byte, [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if len(rawCerts) == 0 {
			return errors.New("the server presented no certificate")
		}
		intermediates := x509.NewCertPool()
		var leaf *x509.Certificate
		for i, raw := range rawCerts {
			cert, err := x509.ParseCertificate(raw)
			if err != nil {
				return fmt.Errorf("the server's certificate #%d does not parse: %w", i+1, err)
			}
			if i == 0 {
				leaf = cert
			} else {
				intermediates.AddCert(cert)
			}
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := leaf.Verify(opts); err != nil {
			return fmt.Errorf("the server's certificate does not chain to --ca: %w", err)
		}
		uris := make([]string, 0, len(leaf.URIs))
		for _, uri := range leaf.URIs {
			uris = append(uris, uri.String())
		}
		if len(uris) != 1 || uris[0] != serverID {
			return fmt.Errorf("the server is not --server-id %s: its certificate carries the URI SANs [%s]", serverID, strings.Join(uris, ", "))
		}
		return nil
	}
}

// rawCodec passes pre-encoded protobuf bytes through. It is named "proto" so
// the content-type stays application/grpc+proto, which any server accepts.
type rawCodec struct{}

// reply receives a response; its bytes are kept only when keep is set (for
// --sample-out), so the hot path neither copies nor retains them.
type reply struct {
	keep bool
	data []byte
}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	r, ok := v.(*reply)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	if r.keep {
		r.data = slices.Clone(data)
	}
	return nil
}

// loader holds the connections and the requests, used round-robin.
type loader struct {
	conns    []*grpc.ClientConn
	method   string
	requests [][]byte
	next     atomic.Uint64
}

// connect waits until every connection is ready. A connection that fails (TLS
// checks, refused) is reported with the error a call on it gets.
func (l *loader) connect(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	for i, conn := range l.conns {
		conn.Connect()
		for state := conn.GetState(); state != connectivity.Ready; state = conn.GetState() {
			if state == connectivity.TransientFailure {
				if err := conn.Invoke(ctx, l.method, l.requests[0], &reply{}); err != nil {
					return fmt.Errorf("connection %d to %s failed: %w", i+1, addr, err)
				}
				break
			}
			if !conn.WaitForStateChange(ctx, state) {
				return fmt.Errorf("connection %d to %s is not ready after %s (state %s)", i+1, addr, connectTimeout, state)
			}
		}
	}
	return nil
}

// phase collects the outcome of calls other than their latencies.
type phase struct {
	sampleMax  int
	errors     atomic.Int64
	firstError atomic.Pointer[string]
	sampled    atomic.Int32
	mu         sync.Mutex
	samples    [][]byte
}

// call issues the next request on the next connection; it returns whether it
// succeeded, and records failures and samples in p.
func (l *loader) call(p *phase) bool {
	i := l.next.Add(1) - 1
	conn := l.conns[i%uint64(len(l.conns))]
	req := l.requests[i%uint64(len(l.requests))]
	resp := reply{keep: int(p.sampled.Load()) < p.sampleMax}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	err := conn.Invoke(ctx, l.method, req, &resp)
	cancel()
	if err != nil {
		p.errors.Add(1)
		msg := err.Error()
		p.firstError.CompareAndSwap(nil, &msg)
		return false
	}
	if resp.keep {
		p.mu.Lock()
		if len(p.samples) < p.sampleMax {
			p.samples = append(p.samples, resp.data)
			p.sampled.Store(int32(len(p.samples)))
		}
		p.mu.Unlock()
	}
	return true
}

// closedLoop runs concurrency goroutines issuing calls back to back for d and
// returns the latencies (ms) of the successful calls.
func closedLoop(l caller, p *phase, concurrency int, d time.Duration) []float64 {
	deadline := time.Now().Add(d)
	perWorker := make([][]float64, concurrency)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []float64
			for {
				started := time.Now()
				if !started.Before(deadline) {
					break
				}
				if l.call(p) {
					lat = append(lat, msSince(started))
				}
			}
			perWorker[w] = lat
		}()
	}
	wg.Wait()
	return slices.Concat(perWorker...)
}

// openLoop schedules rate calls/s evenly over d, each in its own goroutine,
// and returns the latencies (ms) of the successful calls, each measured from
// its scheduled start. It lasts at least d (the last call is due before d),
// so count/elapsed is the rate achieved.
func openLoop(l caller, p *phase, rate float64, d time.Duration) []float64 {
	total := int(rate * d.Seconds())
	latencies := make([]float64, total) // NaN: the call failed
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		due := start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			latencies[i] = math.NaN()
			if l.call(p) {
				latencies[i] = msSince(due)
			}
		}()
	}
	time.Sleep(time.Until(start.Add(d)))
	wg.Wait()
	return slices.DeleteFunc(latencies, math.IsNaN)
}

// readMessages reads length-prefixed messages; errors name the flag and file.
func readMessages(path, flagName string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("%s: %v", flagName, err)
	}
	var out [][]byte
	for off := 0; off < len(data); {
		if len(data)-off < 4 {
			return nil, usagef("%s %s: a length prefix is cut short at byte %d", flagName, path, off)
		}
		n := int(binary.BigEndian.Uint32(data[off:]))
		off += 4
		if len(data)-off < n {
			return nil, usagef("%s %s: message %d wants %d bytes, %d are left", flagName, path, len(out)+1, n, len(data)-off)
		}
		out = append(out, data[off:off+n])
		off += n
	}
	if len(out) == 0 {
		return nil, usagef("%s %s: no message in it", flagName, path)
	}
	return out, nil
}

func writeMessages(path string, messages [][]byte) error {
	var buf []byte
	for _, m := range messages {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(m)))
		buf = append(buf, m...)
	}
	return os.WriteFile(path, buf, 0o644)
}

// percentile is the nearest-rank percentile of sorted values (0 for none),
// as bench/stats.ts computes it.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(len(sorted)-1, i))]
}

// cpuMs is the user+system CPU time this process has used, in ms.
func cpuMs() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

func msSince(t time.Time) float64 { return float64(time.Since(t)) / float64(time.Millisecond) }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func grpcVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == grpcModule {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "unknown"
}
