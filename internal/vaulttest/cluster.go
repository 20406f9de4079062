package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// Nodes is the number of Vault servers; 3 if zero.
	Nodes int
	// Dir holds every node's config, Raft data and log. It must exist;
	// the caller removes it (t.TempDir()).
	Dir string
	// PluginDir holds the plugin binary (see BuildPlugin).
	PluginDir string
	// LogLevel is every node's log level; "debug" if empty.
	LogLevel string
	// PluginVersion and PluginSHA256, when set, register the plugin
	// binary in the catalog and enable it at Mount ("vendoroauth" if
	// empty) through the active node.
	PluginVersion string
	PluginSHA256  string
	Mount         string
	// Timeout bounds each wait (a leader, an unseal, a rejoin); 2 minutes
	// if zero. Elections on a loaded 2-core machine take seconds, not
	// minutes, so running into it means something is wrong.
	Timeout time.Duration
	// Logf, if set, receives progress lines (t.Logf): what each wait
	// waited for and how long it took.
	Logf func(format string, args ...any)
}

// Cluster is N Vault servers with integrated (Raft) storage on loopback,
// initialised with one unseal key and unsealed: what operators run in
// production, minus TLS on the API listener. Standbys forward requests to
// the active node, so a client may talk to any node that is up.
type Cluster struct {
	// RootToken is the root token from `operator init`.
	RootToken string
	// UnsealKey is the single unseal key (base64).
	UnsealKey string

	opts  ClusterOptions
	nodes []*Node
	// mounted is set once the plugin is enabled: from then on
	// WaitHealthy also waits for every node to route the mount.
	mounted bool
}

// Node is one server of a Cluster.
type Node struct {
	// Index is the node's position in the cluster, from 0.
	Index int
	// ID is its Raft node_id.
	ID string
	// Addr is its API address, e.g. "http://127.0.0.1:41234".
	Addr string
	// ClusterAddr is its cluster (Raft and forwarding) address.
	ClusterAddr string
	// LogPath receives its output, appended across restarts.
	LogPath string

	configPath string
	client     *api.Client

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the running process has exited
	started time.Time     // when the running process was started
}

// StartCluster starts opts.Nodes Vault servers, initialises the first with
// one key share, unseals every node, waits until there is a leader and
// every node is a healthy Raft voter, and (if opts.PluginSHA256 is set)
// registers and enables the plugin. On error everything it started is
// stopped.
func StartCluster(opts ClusterOptions) (c *Cluster, err error) {
	opts.setDefaults()
	if opts.Dir == "" {
		return nil, errors.New("vaulttest: ClusterOptions.Dir is required")
	}
	c = &Cluster{opts: opts}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, c.LogTails(60))
			c.Stop()
			c = nil
		}
	}()

	if err := c.addNodes(); err != nil {
		return c, err
	}
	for _, n := range c.nodes {
		if err := c.writeConfig(n); err != nil {
			return c, err
		}
	}
	for _, n := range c.nodes {
		if err := c.launch(n); err != nil {
			return c, err
		}
	}

	// Initialise node 0; the others join it through retry_join once they
	// are given the unseal key.
	first := c.nodes[0]
	if err := c.poll(fmt.Sprintf("%s to answer", first.ID), func() (bool, error) {
		_, err := first.client.Sys().InitStatus()
		return err == nil, c.exited(first)
	}); err != nil {
		return c, err
	}
	init, err := first.client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return c, fmt.Errorf("operator init on %s: %w", first.ID, err)
	}
	c.RootToken, c.UnsealKey = init.RootToken, init.KeysB64[0]
	for _, n := range c.nodes {
		n.client.SetToken(c.RootToken)
	}
	if err := c.unseal(first); err != nil {
		return c, err
	}
	if _, err := c.WaitLeader(); err != nil {
		return c, err
	}
	// Make a joined node a voter as soon as it is healthy instead of
	// after the default 10 s, so the cluster is fault tolerant sooner.
	lead, _ := c.Leader()
	// (api.AutopilotConfig always sends disable_upgrade_migration, which
	// OSS refuses, hence the plain write.)
	if _, err := lead.Logical().Write("sys/storage/raft/autopilot/configuration", map[string]interface{}{
		"server_stabilization_time": "1s",
		"last_contact_threshold":    "5s",
		"cleanup_dead_servers":      false,
	}); err != nil {
		return c, fmt.Errorf("configuring autopilot: %w", err)
	}
	for _, n := range c.nodes[1:] {
		if err := c.unseal(n); err != nil {
			return c, err
		}
	}
	if err := c.WaitHealthy(); err != nil {
		return c, err
	}
	if opts.PluginSHA256 != "" {
		if err := c.enablePlugin(); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (o *ClusterOptions) setDefaults() {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	if o.Mount == "" {
		o.Mount = PluginName
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
}

// addNodes gives each of the c.opts.Nodes nodes its ports, paths and
// client; it starts nothing.
func (c *Cluster) addNodes() error {
	ports, err := FreePorts(2 * c.opts.Nodes)
	if err != nil {
		return err
	}
	for i := 0; i < c.opts.Nodes; i++ {
		api, cl := ports[2*i], ports[2*i+1]
		n := &Node{
			Index:       i,
			ID:          fmt.Sprintf("node%d", i),
			Addr:        "http://127.0.0.1:" + strconv.Itoa(api),
			ClusterAddr: "https://127.0.0.1:" + strconv.Itoa(cl),
			LogPath:     filepath.Join(c.opts.Dir, fmt.Sprintf("node%d.log", i)),
			configPath:  filepath.Join(c.opts.Dir, fmt.Sprintf("node%d.hcl", i)),
		}
		if n.client, err = newClient(n.Addr); err != nil {
			return err
		}
		c.nodes = append(c.nodes, n)
	}
	return nil
}

func newClient(addr string) (*api.Client, error) {
	conf := api.DefaultConfig()
	conf.Address = addr
	// Tests count failures themselves; a retried request would hide them.
	conf.MaxRetries = 0
	conf.Timeout = 30 * time.Second
	client, err := api.NewClient(conf)
	if err != nil {
		return nil, err
	}
	// Never pick up the environment's token or namespace.
	client.ClearToken()
	client.ClearNamespace()
	return client, nil
}

// writeConfig writes a node's HCL: Raft storage in its own directory,
// joining every other node, and a plain-HTTP loopback listener.
func (c *Cluster) writeConfig(n *Node) error {
	data := filepath.Join(c.opts.Dir, n.ID+"-raft")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	var joins strings.Builder
	for _, o := range c.nodes {
		if o != n {
			fmt.Fprintf(&joins, "  retry_join {\n    leader_api_addr = %q\n  }\n", o.Addr)
		}
	}
	hcl := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = %q
  # Elections in about a second instead of five: tests wait for them.
  performance_multiplier = 1
%s}

listener "tcp" {
  address         = %q
  cluster_address = %q
  tls_disable     = true
}

api_addr         = %q
cluster_addr     = %q
plugin_directory = %q
disable_mlock    = true
ui               = false
`, data, n.ID, joins.String(),
		strings.TrimPrefix(n.Addr, "http://"), strings.TrimPrefix(n.ClusterAddr, "https://"),
		n.Addr, n.ClusterAddr, c.opts.PluginDir)
	return os.WriteFile(n.configPath, []byte(hcl), 0o600)
}

// launch starts a node's process; it does not wait for it.
func (c *Cluster) launch(n *Node) error {
	bin, err := VaultBin()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(logf, "==== vaulttest: starting %s at %s ====\n", n.ID, time.Now().Format(time.RFC3339Nano)); err != nil {
		_ = logf.Close() // the write error is the one to report
		return err
	}
	cmd := exec.Command(bin, "server", "-config="+n.configPath, "-log-level="+c.opts.LogLevel)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that Stop can sweep up plugin processes
	// a killed server leaves behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = CLIEnv("ADDR", "", "TOKEN", "", "NAMESPACE", "")
	if err := cmd.Start(); err != nil {
		_ = logf.Close() // the start error is the one to report
		return fmt.Errorf("starting %s: %w", n.ID, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		// The server has exited and its output is written; nobody is left
		// to report a failed close to.
		_ = logf.Close()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done, n.started = cmd, done, time.Now()
	n.mu.Unlock()
	return nil
}

// exited returns an error if the node's process has exited.
func (c *Cluster) exited(n *Node) error {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return fmt.Errorf("%s is not running", n.ID)
	}
	select {
	case <-done:
		return fmt.Errorf("%s exited", n.ID)
	default:
		return nil
	}
}

// poll calls f until it reports done, returns an error, or the cluster's
// timeout passes.
func (c *Cluster) poll(what string, f func() (bool, error)) error {
	start := time.Now()
	deadline := start.Add(c.opts.Timeout)
	var last error
	for {
		ok, err := f()
		if ok {
			c.logf("vaulttest: %s: %s", what, time.Since(start).Round(time.Millisecond))
			return nil
		}
		if err != nil {
			if last == nil || err.Error() != last.Error() {
				c.logf("vaulttest: waiting for %s after %s: %v", what, time.Since(start).Round(time.Millisecond), err)
			}
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for %s: %v", c.opts.Timeout, what, last) //nolint:errorlint // last may be nil (f never failed, only said not yet); it is context, not the cause
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

// unseal gives the node the unseal key until it reports unsealed. A node
// that has not joined yet uses the key to finish joining, which takes a
// few rounds of retry_join.
func (c *Cluster) unseal(n *Node) error {
	return c.poll(n.ID+" to unseal", func() (bool, error) {
		if err := c.exited(n); err != nil {
			return false, err
		}
		st, err := n.client.Sys().SealStatus()
		if err != nil {
			return false, err
		}
		if st.Initialized && !st.Sealed {
			return true, nil
		}
		if st.Sealed && st.Progress == 0 {
			if _, err := n.client.Sys().Unseal(c.UnsealKey); err != nil {
				return false, err
			}
		}
		return false, fmt.Errorf("%s: initialized=%v sealed=%v", n.ID, st.Initialized, st.Sealed)
	})
}

// Nodes returns the cluster's nodes.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Client returns a client for node i, with the root token. Requests to a
// standby are forwarded by Vault to the active node.
func (c *Cluster) Client(i int) *api.Client { return c.nodes[i].client }

// NewClient returns a fresh client for node i with the root token, for
// callers that change client settings.
func (c *Cluster) NewClient(i int) (*api.Client, error) {
	client, err := newClient(c.nodes[i].Addr)
	if err != nil {
		return nil, err
	}
	client.SetToken(c.RootToken)
	return client, nil
}

// Running reports whether node i's process is running.
func (c *Cluster) Running(i int) bool { return c.exited(c.nodes[i]) == nil }

// active reports whether node i says it is the unsealed active node.
func (c *Cluster) active(i int) bool {
	if !c.Running(i) {
		return false
	}
	h, err := c.nodes[i].client.Sys().Health()
	return err == nil && h.Initialized && !h.Sealed && !h.Standby
}

// Leader returns the index and client of the node that is active now, or
// an error if no running node says it is.
func (c *Cluster) Leader() (*api.Client, int) {
	for i := range c.nodes {
		if c.active(i) {
			return c.nodes[i].client, i
		}
	}
	return nil, -1
}

// WaitLeader waits until a running node other than those in exclude is
// active, and every running unsealed node agrees on it, and returns it.
func (c *Cluster) WaitLeader(exclude ...int) (int, error) {
	leader := -1
	err := c.poll("an active node", func() (bool, error) {
		leader = -1
		for i := range c.nodes {
			skip := false
			for _, x := range exclude {
				skip = skip || x == i
			}
			if !skip && c.active(i) {
				leader = i
				break
			}
		}
		if leader < 0 {
			return false, errors.New("no node is active")
		}
		// Every other unsealed node must point at it, or requests sent
		// there are not forwarded yet.
		want := c.nodes[leader].Addr
		for i, n := range c.nodes {
			if i == leader || !c.Running(i) {
				continue
			}
			l, err := n.client.Sys().Leader()
			if err != nil {
				continue // sealed or starting: not serving anyway
			}
			if l.HAEnabled && l.LeaderAddress != want && !isSealedLeader(l) {
				return false, fmt.Errorf("%s follows %q, not %s", n.ID, l.LeaderAddress, want)
			}
		}
		return true, nil
	})
	return leader, err
}

// isSealedLeader reports a sys/leader answer from a node that cannot know
// the leader yet.
func isSealedLeader(l *api.LeaderResponse) bool { return l.LeaderAddress == "" }

// WaitHealthy waits until every node is running, unsealed and a Raft
// voter, there is an active node that all agree on, every standby has an
// open forwarding connection to it (an echo since it started and within
// the last few seconds), and, once the plugin is enabled, every node routes
// its mount (WaitMounted): what a client needs to be served by any node.
//
// It deliberately does not wait for autopilot's "healthy" verdict: after a
// leader change autopilot judges a follower by heartbeats that are only
// collected on the new leader, and on a loaded machine that verdict can lag
// for over a minute while the cluster serves every request.
func (c *Cluster) WaitHealthy() error {
	if _, err := c.WaitLeader(); err != nil {
		return err
	}
	if err := c.waitVoters(); err != nil {
		return err
	}
	if c.mounted {
		return c.WaitMounted()
	}
	return nil
}

func (c *Cluster) waitVoters() error {
	return c.poll("every node to be an unsealed voter that reaches the active node", func() (bool, error) {
		for i, n := range c.nodes {
			if !c.Running(i) {
				return false, fmt.Errorf("%s is not running", n.ID)
			}
			h, err := n.client.Sys().Health()
			if err != nil {
				return false, err
			}
			if h.Sealed {
				return false, fmt.Errorf("%s is sealed", n.ID)
			}
		}
		lead, li := c.Leader()
		if lead == nil {
			return false, errors.New("no node is active")
		}
		voters, err := raftVoters(lead)
		if err != nil {
			return false, err
		}
		ha, err := lead.Sys().HAStatus()
		if err != nil {
			return false, fmt.Errorf("sys/ha-status: %w", err)
		}
		now := time.Now()
		for i, n := range c.nodes {
			if !voters[n.ID] {
				return false, fmt.Errorf("%s is not a Raft voter yet (voters: %v)", n.ID, voters)
			}
			if i == li {
				continue
			}
			var echo *time.Time
			for _, hn := range ha.Nodes {
				if hn.APIAddress == n.Addr {
					echo = hn.LastEcho
				}
			}
			n.mu.Lock()
			started := n.started
			n.mu.Unlock()
			switch {
			case echo == nil:
				return false, fmt.Errorf("%s has not reached the active node %s yet", n.ID, c.nodes[li].ID)
			case echo.Before(started) || now.Sub(*echo) > 10*time.Second:
				return false, fmt.Errorf("%s last reached the active node %s at %s", n.ID, c.nodes[li].ID, echo.Format(time.RFC3339Nano))
			}
		}
		return true, nil
	})
}

// raftVoters returns the node IDs that the Raft configuration holds as
// voters.
func raftVoters(lead *api.Client) (map[string]bool, error) {
	sec, err := lead.Logical().Read("sys/storage/raft/configuration")
	if err != nil {
		return nil, fmt.Errorf("sys/storage/raft/configuration: %w", err)
	}
	if sec == nil || sec.Data == nil {
		return nil, errors.New("sys/storage/raft/configuration: empty answer")
	}
	conf, _ := sec.Data["config"].(map[string]interface{})
	servers, _ := conf["servers"].([]interface{})
	voters := map[string]bool{}
	for _, s := range servers {
		m, _ := s.(map[string]interface{})
		if id, _ := m["node_id"].(string); id != "" {
			if v, _ := m["voter"].(bool); v {
				voters[id] = true
			}
		}
	}
	return voters, nil
}

// enablePlugin registers the plugin binary and mounts it, through the
// active node.
func (c *Cluster) enablePlugin() error {
	lead, _ := c.Leader()
	if lead == nil {
		return errors.New("no active node to register the plugin with")
	}
	if err := lead.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name:    PluginName,
		Type:    api.PluginTypeSecrets,
		Command: PluginBinary,
		SHA256:  c.opts.PluginSHA256,
		Version: c.opts.PluginVersion,
	}); err != nil {
		return fmt.Errorf("registering the plugin: %w", err)
	}
	if err := lead.Sys().Mount(c.opts.Mount, &api.MountInput{
		Type:   PluginName,
		Config: api.MountConfigInput{PluginVersion: c.opts.PluginVersion},
	}); err != nil {
		return fmt.Errorf("enabling the plugin: %w", err)
	}
	c.mounted = true
	return c.WaitMounted()
}

// WaitMounted waits until every running node routes requests for the
// plugin's mount. Vault's standbys forward every request, but OpenBao's
// answer reads themselves and set up a new mount only once its mount table
// entry has reached them: for a moment after the mount is created (or a
// node has restarted) they answer 404 "no handler for route".
func (c *Cluster) WaitMounted() error {
	path := c.opts.Mount + "/config"
	return c.poll("every node to route "+c.opts.Mount+"/", func() (bool, error) {
		for i, n := range c.nodes {
			if !c.Running(i) {
				continue
			}
			status, body, err := RawWith(context.Background(), n.client, "LIST", path, nil)
			switch {
			case status == 0:
				return false, fmt.Errorf("%s: LIST %s: %w", n.ID, path, err)
			case status == 404 && strings.Contains(string(body), "no handler for route"):
				return false, fmt.Errorf("%s: LIST %s: no handler for route yet", n.ID, path)
			case status != 200 && status != 404: // 404 is an empty list
				return false, fmt.Errorf("%s: LIST %s: HTTP %d %s", n.ID, path, status, strings.TrimSpace(string(body)))
			}
		}
		return true, nil
	})
}

// StopNode sends node i's server SIGTERM, as `systemctl stop vault` does
// with HashiCorp's unit (KillMode=process: the server stops its own
// plugins), and waits until it has exited. Plugin processes it leaves
// behind are killed.
func (c *Cluster) StopNode(i int) error {
	n := c.nodes[i]
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-done:
	case <-time.After(c.opts.Timeout):
		err = fmt.Errorf("%s did not stop within %s of SIGTERM; killed", n.ID, c.opts.Timeout)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Whatever is left in the group (a plugin the server failed to stop)
	// would keep serving with stale state.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return err
}

// StartNode starts node i again on its old data directory and ports, and
// unseals it. It does not wait for it to catch up: use WaitHealthy.
func (c *Cluster) StartNode(i int) error {
	n := c.nodes[i]
	if c.Running(i) {
		return fmt.Errorf("%s is already running", n.ID)
	}
	if err := c.launch(n); err != nil {
		return err
	}
	return c.unseal(n)
}

// Stop stops every node and the plugins they started. It is safe to call
// more than once.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		n.mu.Lock()
		cmd, done := n.cmd, n.done
		n.mu.Unlock()
		if cmd == nil || cmd.Process == nil {
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
			}
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}(i)
	}
	wg.Wait()
}

// Log returns node i's output so far, across restarts.
func (c *Cluster) Log(i int) string {
	b, _ := os.ReadFile(c.nodes[i].LogPath)
	return string(b)
}

// LogTails returns the last n lines of every node's log, for a failing
// test's output.
func (c *Cluster) LogTails(n int) string {
	var b strings.Builder
	for i, node := range c.nodes {
		lines := strings.Split(c.Log(i), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "---- %s (%s) last %d lines ----\n%s\n", node.ID, node.Addr, n, strings.Join(lines, "\n"))
	}
	return b.String()
}

// RawWith performs an HTTP request with client and returns status and
// body, for tests that assert on exactly what a client sees. A status of 0
// means no HTTP answer (the node is down, or hung up).
func RawWith(ctx context.Context, client *api.Client, method, path string, body []byte) (int, []byte, error) {
	r := client.NewRequest(method, "/v1/"+strings.TrimPrefix(path, "/"))
	// A query string (?after=…&limit=…) goes as parameters: in the path
	// it would be escaped into the path itself.
	if p, q, ok := strings.Cut(r.URL.Path, "?"); ok {
		r.URL.Path = p
		r.Params, _ = url.ParseQuery(q)
	}
	if body != nil {
		r.BodyBytes = body
	}
	// Any method and path, nothing parsed: what Logical()'s *Raw helpers
	// do on top of this deprecated call, which has no replacement for an
	// arbitrary method.
	resp, err := client.RawRequestWithContext(ctx, r) //nolint:staticcheck // SA1019: see above
	if resp == nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only; the body is read in full below
	b, rerr := io.ReadAll(resp.Body)
	if rerr != nil {
		return 0, nil, rerr
	}
	return resp.StatusCode, b, nil
}
