package vaulttest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Processes on Linux, read from /proc: which plugin processes a server
// runs, and which process holds the client end of a loopback connection,
// so fault tests can kill a plugin the way the kernel's OOM killer would
// and tell which node's plugin sent a vendor request.

// PID returns the server's process id, or 0 when it is not running.
func (v *Vault) PID() int {
	if v.cmd == nil || v.cmd.Process == nil {
		return 0
	}
	return v.cmd.Process.Pid
}

// PID returns node i's current server process id, or 0 when it was never
// started. A restarted node has a new one.
func (c *Cluster) PID(i int) int {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// PluginProcesses returns the ids of the processes that serverPID runs
// from PluginBinary: its children whose executable is the plugin. A
// multiplexed plugin has one per registered version in use.
func PluginProcesses(serverPID int) ([]int, error) {
	if serverPID <= 0 {
		return nil, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, err := parentOf(pid)
		if err != nil || ppid != serverPID {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue // gone meanwhile
		}
		// A binary replaced on disk reads "<path> (deleted)".
		exe = strings.TrimSuffix(exe, " (deleted)")
		if filepath.Base(exe) == PluginBinary {
			out = append(out, pid)
		}
	}
	return out, nil
}

// parentOf reads a process's parent id from /proc/<pid>/stat.
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses,
	// so split after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strconv.Atoi(f[1])
}

// KillPlugins sends SIGKILL to every plugin process serverPID runs and
// returns their ids. The server notices on its next request to the plugin
// and starts it again.
func KillPlugins(serverPID int) ([]int, error) {
	pids, err := PluginProcesses(serverPID)
	if err != nil {
		return nil, err
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("server %d runs no %s process", serverPID, PluginBinary)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return pids, fmt.Errorf("killing %d: %w", pid, err)
		}
	}
	return pids, nil
}

// SocketOwner returns which of candidates holds the client end of the
// loopback TCP connection from client to server, as the server sees them
// (the request's RemoteAddr and its local address, e.g. "127.0.0.1:41234"
// and "127.0.0.1:8200"), or 0 if none does. It must be called while the
// connection is open, e.g. from the handler serving the request.
func SocketOwner(client, server string, candidates []int) (int, error) {
	inode, err := socketInode(client, server)
	if err != nil || inode == "" {
		return 0, err
	}
	want := "socket:[" + inode + "]"
	for _, pid := range candidates {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // gone meanwhile
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && l == want {
				return pid, nil
			}
		}
	}
	return 0, nil
}

// procAddr writes an IPv4 address as /proc/net/tcp does: the four bytes
// as one little-endian word, then the port in hex.
func procAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return "", fmt.Errorf("%s is not an IPv4 address", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], p), nil
}

// socketInode finds the inode of the IPv4 TCP socket from local to remote
// in /proc/net/tcp, or "" if there is none. Matching both ends matters: an
// ephemeral port may also be the local end of a closed connection to
// another address, lingering in TIME_WAIT with inode 0.
func socketInode(local, remote string) (string, error) {
	l, err := procAddr(local)
	if err != nil {
		return "", err
	}
	r, err := procAddr(remote)
	if err != nil {
		return "", err
	}
	// One read of the whole table: the kernel builds it a page at a
	// time, and a table read in small pieces while connections open and
	// close can skip lines. (A caller that finds nothing may retry.)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 10 && fields[1] == l && fields[2] == r && fields[9] != "0" {
			return fields[9], nil
		}
	}
	return "", sc.Err()
}

// PauseNode stops node i's server and its plugins with SIGSTOP, as a
// hung VM or a network partition would look to the other nodes: it
// neither answers nor exits. ResumeNode undoes it.
func (c *Cluster) PauseNode(i int) error {
	pid := c.PID(i)
	if pid == 0 {
		return fmt.Errorf("%s is not running", c.nodes[i].ID)
	}
	return syscall.Kill(-pid, syscall.SIGSTOP)
}

// ResumeNode continues node i after PauseNode.
func (c *Cluster) ResumeNode(i int) error {
	pid := c.PID(i)
	if pid == 0 {
		return fmt.Errorf("%s is not running", c.nodes[i].ID)
	}
	return syscall.Kill(-pid, syscall.SIGCONT)
}
