// Package pprofenv lets a benchmark plugin binary serve net/http/pprof
// when Vault starts it with BENCH_PPROF_ADDR in its environment (set with
// `vault plugin register -env`). Without the variable it does nothing, so
// the binary behaves as the plugin it stands for.
package pprofenv

import (
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"time"
)

// Env names the variable holding the listen address, e.g. 127.0.0.1:0.
const Env = "BENCH_PPROF_ADDR"

// AddrFileEnv names a file that receives the address actually listened on,
// for a port of 0.
const AddrFileEnv = "BENCH_PPROF_ADDR_FILE"

// Serve starts the pprof listener in the background when Env is set.
func Serve() {
	addr := os.Getenv(Env)
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return
	}
	if f := os.Getenv(AddrFileEnv); f != "" {
		_ = os.WriteFile(f, []byte(ln.Addr().String()), 0o600)
	}
	srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
}
