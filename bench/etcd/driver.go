// Command driver is a closed-loop load generator for etcd 3.4 (clientv3),
// written for Copycat's benchmark comparison (docs/BENCHMARKS.md).
//
// N client goroutines each run one operation at a time, in a loop, for a
// warm-up and then for a fixed measured duration. By default every client
// goroutine owns its own clientv3.Client (its own gRPC/TCP connection) to the
// cluster leader, which is the closest match to a Copycat client (one TCP
// connection to the leader). --conns makes clients share fewer connections,
// the way etcd's own `benchmark` tool does.
//
// It prints ONE JSON object on stdout; progress and errors go to stderr.
//
// Built offline against Debian's Go sources (package golang-etcd-server-dev),
// in GOPATH mode; see scripts/bench-etcd.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/version"
	"google.golang.org/grpc/grpclog"
)

type latencies struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

type result struct {
	System      string          `json:"system"`
	Version     string          `json:"version"`
	Op          string          `json:"op"`
	Clients     int             `json:"clients"`
	Conns       int             `json:"conns"`
	ValueBytes  int             `json:"value_bytes"`
	Keys        int             `json:"keys"`
	WarmupS     float64         `json:"warmup_s"`
	DurationS   float64         `json:"duration_s"`
	Ops         int64           `json:"ops"`
	OpsPerS     float64         `json:"ops_per_s"`
	LatencyMs   latencies       `json:"latency_ms"`
	Errors      int64           `json:"errors"`
	Target      string          `json:"target"`
	Endpoints   []string        `json:"endpoints"`
	ServerVer   string          `json:"server_version,omitempty"`
	ClusterSize int             `json:"cluster_size,omitempty"`
	Machine     json.RawMessage `json:"machine,omitempty"`
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "driver: "+format+"\n", a...)
	os.Exit(2)
}

func key(i int) string { return fmt.Sprintf("%08d", i) } // 8-byte keys, like etcd's benchmark

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	// nearest-rank
	idx := int(p*float64(len(sorted))+0.999999) - 1
	if idx < 0 {
		idx = 0
	}
	if idx >= len(sorted) {
		idx = len(sorted) - 1
	}
	return float64(sorted[idx]) / 1e6
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "table" {
		table(os.Args[2:])
		return
	}
	endpointsFlag := flag.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs (host:port or http://host:port)")
	clients := flag.Int("clients", 1, "number of closed-loop clients (goroutines)")
	conns := flag.Int("conns", 0, "number of clientv3 clients (connections); 0 = one per client")
	duration := flag.Duration("duration", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", 2*time.Second, "warm-up before measuring (ops not recorded)")
	valueBytes := flag.Int("value-bytes", 256, "value size in bytes")
	op := flag.String("op", "put", "put | get-linearizable | get-serializable")
	keys := flag.Int("keys", 10000, "key space: keys are 8-digit decimal strings in [0, keys)")
	target := flag.String("target", "leader", "leader: connect every client to the leader; all: spread clients round-robin over --endpoints")
	opTimeout := flag.Duration("op-timeout", 10*time.Second, "per-operation timeout (counted as an error)")
	seed := flag.Int64("seed", 1, "random seed for key choice")
	fill := flag.Bool("fill", true, "for reads: first write every key of the key space once (not measured)")
	machine := flag.String("machine-json", "", "optional JSON object copied into the result as \"machine\"")
	flag.Parse()

	if *clients < 1 {
		die("--clients must be >= 1")
	}
	if *conns <= 0 || *conns > *clients {
		*conns = *clients
	}
	if *keys < 1 {
		die("--keys must be >= 1")
	}
	switch *op {
	case "put", "get-linearizable", "get-serializable":
	default:
		die("unknown --op %q", *op)
	}
	// Quiet gRPC's own logging (reconnect chatter) - errors are counted instead.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2WithVerbosity(nopWriter{}, nopWriter{}, os.Stderr, 0))

	var eps []string
	for _, e := range strings.Split(*endpointsFlag, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !strings.Contains(e, "://") {
			e = "http://" + e
		}
		eps = append(eps, e)
	}
	if len(eps) == 0 {
		die("no endpoints")
	}

	// Find the leader and the server version with a throw-away client.
	probe, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		die("connect: %v", err)
	}
	leaderEP := ""
	serverVer := ""
	clusterSize := 0
	{
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if ml, err := probe.MemberList(ctx); err == nil {
			clusterSize = len(ml.Members)
		}
		for _, e := range eps {
			st, err := probe.Status(ctx, e)
			if err != nil {
				continue
			}
			serverVer = st.Version
			if st.Leader == st.Header.MemberId {
				leaderEP = e
			}
		}
		cancel()
	}
	var clientEPs [][]string // endpoints used by connection i
	switch *target {
	case "leader":
		if leaderEP == "" {
			die("could not find the leader among %v", eps)
		}
		for i := 0; i < *conns; i++ {
			clientEPs = append(clientEPs, []string{leaderEP})
		}
	case "all":
		for i := 0; i < *conns; i++ {
			clientEPs = append(clientEPs, []string{eps[i%len(eps)]})
		}
	default:
		die("unknown --target %q", *target)
	}

	cls := make([]*clientv3.Client, *conns)
	for i := range cls {
		c, err := clientv3.New(clientv3.Config{Endpoints: clientEPs[i], DialTimeout: 5 * time.Second})
		if err != nil {
			die("connect %v: %v", clientEPs[i], err)
		}
		cls[i] = c
	}

	value := strings.Repeat("v", *valueBytes)

	// Reads need existing keys: fill the key space once (not measured).
	if *op != "put" && *fill {
		var next int64 = -1
		var wg sync.WaitGroup
		var fillErr atomic.Value
		for w := 0; w < *conns; w++ {
			wg.Add(1)
			go func(c *clientv3.Client) {
				defer wg.Done()
				for {
					i := atomic.AddInt64(&next, 1)
					if i >= int64(*keys) {
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), *opTimeout)
					_, err := c.Put(ctx, key(int(i)), value)
					cancel()
					if err != nil {
						fillErr.Store(err)
						return
					}
				}
			}(cls[w])
		}
		wg.Wait()
		if e := fillErr.Load(); e != nil {
			die("filling the key space: %v", e)
		}
	}

	start := time.Now()
	measureFrom := start.Add(*warmup)
	measureTo := measureFrom.Add(*duration)

	var errs int64
	perClient := make([][]time.Duration, *clients)
	var wg sync.WaitGroup
	for ci := 0; ci < *clients; ci++ {
		wg.Add(1)
		go func(ci int) {
			defer wg.Done()
			c := cls[ci%*conns]
			rng := rand.New(rand.NewSource(*seed + int64(ci)*7919))
			lat := make([]time.Duration, 0, 1<<14)
			for {
				t0 := time.Now()
				if !t0.Before(measureTo) {
					break
				}
				k := key(rng.Intn(*keys))
				ctx, cancel := context.WithTimeout(context.Background(), *opTimeout)
				var err error
				switch *op {
				case "put":
					_, err = c.Put(ctx, k, value)
				case "get-linearizable":
					_, err = c.Get(ctx, k)
				case "get-serializable":
					_, err = c.Get(ctx, k, clientv3.WithSerializable())
				}
				cancel()
				t1 := time.Now()
				// An op counts if it completes inside the measured window.
				if t1.Before(measureFrom) || t1.After(measureTo) {
					continue
				}
				if err != nil {
					atomic.AddInt64(&errs, 1)
					continue
				}
				lat = append(lat, t1.Sub(t0))
			}
			perClient[ci] = lat
		}(ci)
	}
	wg.Wait()

	var all []time.Duration
	for _, l := range perClient {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	lat := latencies{
		P50:  percentile(all, 0.50),
		P90:  percentile(all, 0.90),
		P99:  percentile(all, 0.99),
		P999: percentile(all, 0.999),
	}
	if n := len(all); n > 0 {
		lat.Max = float64(all[n-1]) / 1e6
		lat.Mean = float64(sum) / float64(n) / 1e6
	}

	for _, c := range cls {
		c.Close()
	}
	probe.Close()

	ver := serverVer
	if ver == "" {
		ver = version.Version
	}
	res := result{
		System:      "etcd",
		Version:     ver,
		Op:          *op,
		Clients:     *clients,
		Conns:       *conns,
		ValueBytes:  *valueBytes,
		Keys:        *keys,
		WarmupS:     warmup.Seconds(),
		DurationS:   duration.Seconds(),
		Ops:         int64(len(all)),
		OpsPerS:     float64(len(all)) / duration.Seconds(),
		LatencyMs:   lat,
		Errors:      errs,
		Target:      *target,
		Endpoints:   eps,
		ServerVer:   serverVer,
		ClusterSize: clusterSize,
	}
	if *machine != "" {
		if !json.Valid([]byte(*machine)) {
			die("--machine-json is not valid JSON")
		}
		res.Machine = json.RawMessage(*machine)
	}
	round := func(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
	res.OpsPerS = round(res.OpsPerS)
	res.LatencyMs = latencies{round(lat.P50), round(lat.P90), round(lat.P99), round(lat.P999), round(lat.Max), round(lat.Mean)}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

// table prints a Markdown table of the JSON lines in the given files
// ("-" or nothing: stdin). Usage: driver table results.jsonl
func table(files []string) {
	if len(files) == 0 {
		files = []string{"-"}
	}
	fmt.Println("| system | op | clients | conns | ops | ops/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, f := range files {
		in := os.Stdin
		if f != "-" {
			var err error
			if in, err = os.Open(f); err != nil {
				die("%v", err)
			}
		}
		dec := json.NewDecoder(in)
		for {
			var r result
			if err := dec.Decode(&r); err != nil {
				if err.Error() != "EOF" {
					die("%s: %v", f, err)
				}
				break
			}
			l := r.LatencyMs
			fmt.Printf("| %s %s | %s | %d | %d | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %d |\n",
				r.System, r.Version, r.Op, r.Clients, r.Conns, r.Ops, r.OpsPerS, l.P50, l.P90, l.P99, l.P999, l.Max, r.Errors)
		}
		if in != os.Stdin {
			in.Close()
		}
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
