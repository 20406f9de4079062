//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// TestPluginKilledUnderLoad has 32 readers read 20 credentials through a
// real Vault while the plugin process is killed with SIGKILL five times,
// as the kernel's OOM killer would. Fourteen of the credentials rotate
// their refresh token on every refresh and live 12-16 seconds, so that
// refreshes are in flight most of the time; each kill is aimed at a moment
// when the vendor has processed a refresh (and so rotated its refresh
// token) but its answer has not reached the plugin yet, the one moment a
// crash loses a rotation. Six are client-credentials ones.
//
// Against a vendor that keeps a rotated-away refresh token usable for 30 s
// (Okta's grace period, Auth0's reuse interval), it proves that reads
// succeed again within seconds of each kill, that no read hands out an
// expired or revoked token, and that no chain is lost. Against a strict
// vendor (reuse detection, no grace) it asserts only the first two and
// reports what a lost rotation costs and what readers saw.
func TestPluginKilledUnderLoad(t *testing.T) {
	testStart := time.Now()
	fv := startFaultVault(t)
	t.Run("grace", func(t *testing.T) {
		runKillPhase(t, fv, killPhase{name: "grace", grace: 30 * time.Second, duration: 60 * time.Second, kills: 5})
	})
	t.Run("strict", func(t *testing.T) {
		runKillPhase(t, fv, killPhase{name: "strict", duration: 40 * time.Second, kills: 5})
	})
	t.Logf("test took %s", time.Since(testStart).Round(100*time.Millisecond))
}

// faultVault is a Vault dev server of the test's own, so killing its
// plugin touches no other test.
type faultVault struct {
	v      *vaulttest.Vault
	client *api.Client
}

func startFaultVault(t *testing.T) *faultVault {
	t.Helper()
	dir := t.TempDir()
	v := startMountedVault(t, vaulttest.Options{PluginDir: vault.PluginDir, LogLevel: "debug", LogPath: filepath.Join(dir, "vault.log")}, pluginVersion, pluginSHA(t))
	// A client whose pool keeps a connection per reader: the default
	// pool keeps three and would make 32 readers churn through
	// thousands of short-lived connections.
	conf := api.DefaultConfig()
	conf.Address = v.Addr
	conf.MaxRetries = 0
	conf.Timeout = 30 * time.Second
	if tr, ok := conf.HttpClient.Transport.(*http.Transport); ok {
		tr.MaxIdleConnsPerHost = 64
	}
	client, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(vaulttest.RootToken)
	return &faultVault{v: v, client: client}
}

func (fv *faultVault) call(ctx context.Context, method, path string, body map[string]interface{}) (int, apiResponse, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return 0, apiResponse{}, err
		}
	}
	status, out, err := vaulttest.RawWith(ctx, fv.client, method, path, raw)
	var r apiResponse
	if len(out) > 0 {
		if jerr := json.Unmarshal(out, &r); jerr != nil && err == nil {
			err = fmt.Errorf("answer is not JSON: %w: %s", jerr, out)
		}
	}
	return status, r, err
}

type killPhase struct {
	name     string
	grace    time.Duration // the vendors' RotationGrace; 0 is strict
	duration time.Duration
	kills    int
}

// killCred is one credential of the test.
type killCred struct {
	name, vendor, client string
	rotating             bool
}

// killRead is one reader's read.
type killRead struct {
	cred          int
	sent, arrived time.Time
	status        int
	token         string
	lease         int
	stale         bool   // the answer carried a warning (a stale token)
	failure       string // why the read failed; "" on success
	bad           string // what is wrong with the token handed out; "" if nothing
	revoked       bool   // handed out a token the vendor had revoked
}

// killEvent is one SIGKILL.
type killEvent struct {
	at       time.Time
	pids     []int
	aimed    bool      // a rotating refresh's answer was held when it struck
	inflight []tapCall // vendor calls without an answer at that moment
	// Filled in from the reads afterwards.
	firstOK  time.Duration // first good read sent after the kill
	allOK    time.Duration // every credential had a good read sent after the kill
	failed   int           // failed reads attributed to the kill
	lastFail time.Duration // the last of them ended this long after the kill
	missing  []string      // credentials with no good read after the kill
	failures map[string]int
}

func runKillPhase(t *testing.T, fv *faultVault, ph killPhase) {
	const (
		readers   = 32
		penboxes  = 8
		generics  = 6
		officernd = 6
		// The vendor works this long before processing a request, and the
		// tap holds its answer this long after: refreshes are in flight
		// often, and a kill can land on either side of the rotation.
		vendorDelay = 100 * time.Millisecond
		answerHold  = 300 * time.Millisecond
		// A kill waits at most this long for a rotating refresh whose
		// answer is held; if none comes, it strikes anyway.
		aimWait = 5 * time.Second
		// Reads must succeed again this soon after a kill.
		firstOKLimit = 5 * time.Second
		allOKLimit   = 10 * time.Second
	)
	ctx := context.Background()
	vs := standin.New()
	tap := newVendorTap(t, vs)
	tap.setHold(answerHold)
	rotating := standin.Behavior{Rotate: true, ReuseDetection: true, RotationGrace: ph.grace, Delay: vendorDelay}
	pb, gen, ornd := vs.Vendor(standin.VendorPenbox), vs.Vendor(standin.VendorGeneric), vs.Vendor(standin.VendorOfficeRnD)
	b := rotating
	b.Lifetime = 12 * time.Second
	pb.SetBehavior(b)
	b.Lifetime = 16 * time.Second
	gen.SetBehavior(b)
	ornd.SetBehavior(standin.Behavior{Lifetime: 15 * time.Second, Delay: vendorDelay})

	var creds []killCred
	add := func(v *standin.Vendor, n int, body func() map[string]interface{}) {
		for i := 0; i < n; i++ {
			c := killCred{
				name:   fmt.Sprintf("kill-%s-%s-%d", ph.name, v.Name(), i),
				vendor: v.Name(),
				client: fmt.Sprintf("kill-%s-%s-%d-client", ph.name, v.Name(), i),
			}
			secret := "kill-secret-" + randomHex(8)
			v.AddClient(standin.Client{ID: c.client, Secret: secret})
			cfg := body()
			if _, ok := cfg["refresh_token"]; ok {
				c.rotating = true
				rt := v.IssueRefreshToken(c.client)
				cfg["refresh_token"] = rt
			}
			cfg["token_url"] = tap.base + v.TokenPath()
			cfg["client_id"], cfg["client_secret"] = c.client, secret
			cfg["expiry_skew"] = "1s"
			status, r, err := fv.call(ctx, "POST", mount+"/config/"+c.name, cfg)
			if err != nil || status/100 != 2 {
				t.Fatalf("writing config/%s: HTTP %d %v %v", c.name, status, r.Errors, err)
			}
			creds = append(creds, c)
		}
	}
	add(pb, penboxes, func() map[string]interface{} {
		return map[string]interface{}{"provider": "penbox", "refresh_token": ""}
	})
	add(gen, generics, func() map[string]interface{} {
		return map[string]interface{}{"provider": "generic", "grant_type": "refresh_token", "refresh_token": ""}
	})
	add(ornd, officernd, func() map[string]interface{} {
		return map[string]interface{}{"provider": "officernd", "scopes": "officernd.api.read"}
	})
	t.Cleanup(func() {
		for _, c := range creds {
			_, _, _ = fv.call(ctx, "DELETE", mount+"/config/"+c.name, nil)
		}
	})
	for _, c := range creds {
		if status, r, err := fv.call(ctx, "GET", mount+"/token/"+c.name, nil); err != nil || status != 200 {
			t.Fatalf("first read of token/%s: HTTP %d %v %v", c.name, status, r.Errors, err)
		}
	}

	// judge checks a handed-out token against the vendor that issued it.
	judge := func(o *killRead, r apiResponse) {
		c := creds[o.cred]
		v := vs.Vendor(c.vendor)
		o.token, o.lease, o.stale = str(r.Data["access_token"]), r.LeaseDuration, len(r.Warnings) > 0
		exp, ok := v.TokenExpiry(o.token)
		valid := v.Valid(o.token)
		checked := time.Now()
		expiresAt, perr := time.Parse(time.RFC3339, str(r.Data["expires_at"]))
		switch {
		case !ok:
			o.bad = "a token the vendor never issued"
		case !o.arrived.Before(exp):
			o.bad = fmt.Sprintf("EXPIRED: the token expired %s before the answer arrived", o.arrived.Sub(exp).Round(time.Millisecond))
		case o.sent.Add(time.Duration(o.lease) * time.Second).After(exp):
			o.bad = fmt.Sprintf("the lease (%ds from a read sent at %s) outlives the token by %s",
				o.lease, o.sent.Format("15:04:05.000"), o.sent.Add(time.Duration(o.lease)*time.Second).Sub(exp).Round(time.Millisecond))
		case perr != nil:
			o.bad = fmt.Sprintf("expires_at %q: %v", r.Data["expires_at"], perr)
		case expiresAt.After(exp):
			o.bad = fmt.Sprintf("expires_at %s is after the vendor's expiry %s", expiresAt.Format(time.RFC3339), exp.Format(time.RFC3339Nano))
		case !valid && checked.Before(exp):
			o.revoked = true
		}
	}

	var (
		mu    sync.Mutex
		reads []killRead
	)
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < readers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(time.Now().UnixNano() + int64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				o := killRead{cred: rng.Intn(len(creds)), sent: time.Now()}
				rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				status, r, err := fv.call(rctx, "GET", mount+"/token/"+creds[o.cred].name, nil)
				cancel()
				o.arrived, o.status = time.Now(), status
				switch {
				case err != nil:
					o.failure = err.Error()
				case status != 200:
					o.failure = fmt.Sprintf("HTTP %d %s", status, strings.Join(r.Errors, "; "))
				default:
					judge(&o, r)
				}
				mu.Lock()
				reads = append(reads, o)
				mu.Unlock()
				// A short pause keeps 32 readers from burying two cores
				// in lease bookkeeping; each credential is still read
				// many times a second.
				time.Sleep(time.Duration(30+rng.Intn(30)) * time.Millisecond)
			}
		}(w)
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	isRotating := func(c tapCall) bool {
		return c.Grant == "refresh_token" && (strings.HasPrefix(c.Path, "/penbox/") || strings.HasPrefix(c.Path, "/generic/"))
	}
	var kills []*killEvent
	for k := 0; k < ph.kills; k++ {
		at := start.Add(ph.duration * time.Duration(2*k+1) / time.Duration(2*ph.kills))
		time.Sleep(time.Until(at))
		actx, cancel := context.WithTimeout(ctx, aimWait)
		calls, aimErr := tap.waitFor(actx, func(cs []tapCall) bool {
			for _, c := range cs[max(0, len(cs)-50):] {
				if c.answerHeld() && isRotating(c) {
					return true
				}
			}
			return false
		})
		cancel()
		ev := &killEvent{aimed: aimErr == nil, failures: map[string]int{}}
		for _, c := range calls {
			if c.inFlight() {
				ev.inflight = append(ev.inflight, c)
			}
		}
		// Vault starts the plugin again on the next request; until it
		// has, there is nothing to kill.
		deadline := time.Now().Add(10 * time.Second)
		for {
			pids, err := vaulttest.KillPlugins(fv.v.PID())
			if err == nil {
				ev.at, ev.pids = time.Now(), pids
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: %v", k+1, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		kills = append(kills, ev)
	}
	time.Sleep(time.Until(start.Add(ph.duration)))
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	// What is left: every credential's health, a read, and for the
	// rotating ones a forced refresh, which must present the refresh
	// token the vendor issued last.
	type endState struct {
		needsReauth bool
		lastErr     string
		readStatus  int
		readValid   bool
		refresh     int
		refreshErr  string
	}
	end := make([]endState, len(creds))
	for i, c := range creds {
		var es endState
		status, r, err := fv.call(ctx, "GET", mount+"/config/"+c.name, nil)
		if err != nil || status != 200 {
			t.Errorf("reading config/%s at the end: HTTP %d %v %v", c.name, status, r.Errors, err)
		}
		es.needsReauth, _ = r.Data["needs_reauthorization"].(bool)
		es.lastErr = str(r.Data["last_error_code"])
		status, r, _ = fv.call(ctx, "GET", mount+"/token/"+c.name, nil)
		es.readStatus = status
		es.readValid = status == 200 && vs.Vendor(c.vendor).Valid(str(r.Data["access_token"]))
		if c.rotating {
			status, r, _ = fv.call(ctx, "POST", mount+"/refresh/"+c.name, nil)
			es.refresh = status
			if status != 200 {
				es.refreshErr = strings.Join(r.Errors, "; ")
			} else {
				status, r, _ = fv.call(ctx, "GET", mount+"/token/"+c.name, nil)
				if status != 200 || !vs.Vendor(c.vendor).Valid(str(r.Data["access_token"])) {
					es.refreshErr = fmt.Sprintf("after the refresh, token/%s gave HTTP %d and a token the vendor does not accept", c.name, status)
				}
			}
		}
		end[i] = es
	}
	calls := tap.snapshot()
	breaks := chainBreaks(calls)

	// Measure each kill's recovery: the first good read sent after it,
	// and when every credential had had one.
	mu.Lock()
	sort.Slice(reads, func(i, j int) bool { return reads[i].sent.Before(reads[j].sent) })
	all := append([]killRead(nil), reads...)
	mu.Unlock()
	dead := map[int]bool{} // credentials that need reauthorization at the end
	for i := range creds {
		dead[i] = end[i].needsReauth
	}
	alive := 0
	for i := range creds {
		if !dead[i] {
			alive++
		}
	}
	for k, ev := range kills {
		next := start.Add(elapsed)
		if k+1 < len(kills) {
			next = kills[k+1].at
		}
		// When each credential's first good read sent after the kill
		// arrived.
		seen := map[int]time.Duration{}
		ev.firstOK, ev.allOK = -1, -1
		for _, o := range all {
			if o.sent.Before(ev.at) || !o.sent.Before(next) || o.failure != "" {
				continue
			}
			d := o.arrived.Sub(ev.at)
			if ev.firstOK < 0 || d < ev.firstOK {
				ev.firstOK = d
			}
			if prev, ok := seen[o.cred]; !dead[o.cred] && (!ok || d < prev) {
				seen[o.cred] = d
			}
		}
		if len(seen) == alive {
			for _, d := range seen {
				ev.allOK = max(ev.allOK, d)
			}
		}
		for i, c := range creds {
			if _, ok := seen[i]; !ok && !dead[i] {
				ev.missing = append(ev.missing, c.name)
			}
		}
	}
	var (
		total, good, failedOutside, stale, revoked int
		bad                                        []killRead
		outside                                    = map[string]int{}
		revokedBy                                  = map[string]int{}
	)
	// A failed read belongs to a kill if it ended after the kill and was
	// sent at most allOKLimit after it: Vault starts the plugin again on
	// the first request that finds it gone, and requests already on
	// their way to the dead process fail a little after that.
	windowOf := func(o killRead) int {
		for k := len(kills) - 1; k >= 0; k-- {
			ev := kills[k]
			if !o.arrived.Before(ev.at) && !o.sent.After(ev.at.Add(allOKLimit)) {
				return k
			}
		}
		return -1
	}
	for _, o := range all {
		total++
		switch {
		case o.failure != "":
			if k := windowOf(o); k >= 0 {
				kills[k].failed++
				if d := o.arrived.Sub(kills[k].at); d > kills[k].lastFail {
					kills[k].lastFail = d
				}
				kills[k].failures[shorten(o.failure)]++
			} else {
				failedOutside++
				outside[fmt.Sprintf("%s: %s", creds[o.cred].name, shorten(o.failure))]++
			}
		case o.bad != "":
			bad = append(bad, o)
		default:
			good++
			if o.stale {
				stale++
			}
			if o.revoked {
				revoked++
				revokedBy[creds[o.cred].name]++
			}
		}
	}

	// Report.
	st := map[string]standin.Stats{}
	for _, n := range []string{standin.VendorPenbox, standin.VendorGeneric, standin.VendorOfficeRnD} {
		st[n] = vs.Vendor(n).Stats()
	}
	t.Logf("%s phase: %d readers over %d credentials (%d rotating) for %s; vendor delay %s, answers held %s after processing; rotation grace %s",
		ph.name, readers, len(creds), penboxes+generics, elapsed.Round(100*time.Millisecond), vendorDelay, answerHold, ph.grace)
	t.Logf("reads: %d total, %d good (%d stale with a warning, %d with a token the vendor had revoked), %d failed inside kill windows, %d failed outside, %d handed out a bad token",
		total, good, stale, revoked, sum(killFailed(kills)), failedOutside, len(bad))
	hits, heldHits, heldTotal := 0, 0, 0
	for k, ev := range kills {
		var fl []string
		held := 0
		for _, c := range ev.inflight {
			state := "at the vendor"
			if c.answerHeld() {
				state = "processed, answer in transit"
				if isRotating(c) {
					held++
				}
			}
			fl = append(fl, fmt.Sprintf("%s %s (%s)", c.Client, c.Grant, state))
		}
		if len(ev.inflight) > 0 {
			hits++
		}
		if held > 0 {
			heldHits++
		}
		heldTotal += held
		t.Logf("kill %d at +%s (pid %v, aimed %v): first good read %s after, every live credential %s after; %d reads failed, the last %s after; in flight: %s",
			k+1, ev.at.Sub(start).Round(time.Millisecond), ev.pids, ev.aimed, fmtDur(ev.firstOK), fmtDur(ev.allOK), ev.failed, ev.lastFail.Round(time.Millisecond), strings.Join(fl, ", "))
		for _, f := range sortedKeysInt(ev.failures) {
			t.Logf("    %4d × %s", ev.failures[f], f)
		}
		if len(ev.missing) > 0 {
			t.Logf("    no good read after this kill: %s", strings.Join(ev.missing, ", "))
		}
	}
	t.Logf("kills that hit a vendor call in flight: %d of %d; that hit a rotating refresh whose answer was in transit: %d (%d such refreshes in all); rotations lost: %d",
		hits, len(kills), heldHits, heldTotal, len(breaks))
	for _, br := range breaks {
		why := "its answer reached the plugin, which died before storing it"
		if br.LostIn.Gone {
			why = "its answer never reached the plugin"
		}
		t.Logf("lost rotation: %s presented a rotated-away refresh token at +%s (rotated at +%s; %s): vendor answered %s; then %s",
			br.Client, br.At.Sub(start).Round(time.Millisecond), br.LostIn.Processed.Sub(start).Round(time.Millisecond), why, br.Outcome,
			afterBreak(all, creds, br, start))
	}
	for _, n := range []string{standin.VendorPenbox, standin.VendorGeneric, standin.VendorOfficeRnD} {
		s := st[n]
		t.Logf("vendor %s: %d requests, %d grants %v, %d reuse detections, %d grace reuses, failures %v",
			n, s.Requests, s.Grants, s.ByGrantType, s.ReuseDetections, s.GraceReuses, s.Failures)
	}
	var reauth, unreadable, noRefresh []string
	for i, c := range creds {
		es := end[i]
		if es.needsReauth {
			reauth = append(reauth, c.name)
		}
		if es.readStatus != 200 || !es.readValid {
			unreadable = append(unreadable, fmt.Sprintf("%s (HTTP %d, valid %v)", c.name, es.readStatus, es.readValid))
		}
		if c.rotating && (es.refresh != 200 || es.refreshErr != "") {
			noRefresh = append(noRefresh, fmt.Sprintf("%s (HTTP %d %s)", c.name, es.refresh, shorten(es.refreshErr)))
		}
	}
	t.Logf("at the end: %d credentials need reauthorization %v; %d cannot be read with a valid token %v; %d rotating ones cannot be refreshed %v",
		len(reauth), reauth, len(unreadable), unreadable, len(noRefresh), noRefresh)
	if len(revokedBy) > 0 {
		t.Logf("revoked tokens handed out, per credential: %v", revokedBy)
	}
	for _, k := range sortedKeysInt(outside) {
		t.Logf("  failed outside kill windows: %4d × %s", outside[k], k)
	}
	t.Logf("plugin log: %s", pluginLogSummary(fv.v.Log(), ph.name))

	// Verdicts that hold for any vendor.
	for i, o := range bad {
		if i == 10 {
			t.Errorf("… and %d more bad tokens", len(bad)-10)
			break
		}
		t.Errorf("read of %s at +%s handed out a bad token: %s", creds[o.cred].name, o.arrived.Sub(start).Round(time.Millisecond), o.bad)
	}
	for k, ev := range kills {
		if len(ev.pids) == 0 {
			t.Errorf("kill %d killed no plugin process", k+1)
		}
		if k > 0 && fmt.Sprint(ev.pids) == fmt.Sprint(kills[k-1].pids) {
			t.Errorf("kill %d found the process kill %d had killed (%v): it was not restarted", k+1, k, ev.pids)
		}
		if ev.firstOK < 0 || ev.firstOK > firstOKLimit {
			t.Errorf("kill %d: no good read within %s (first after %s)", k+1, firstOKLimit, fmtDur(ev.firstOK))
		}
	}
	if good < readers*20 {
		t.Errorf("only %d good reads: the readers did not run", good)
	}
	if ph.grace == 0 {
		return
	}

	// With a grace period, nothing may be lost.
	for k, ev := range kills {
		if ev.allOK < 0 || ev.allOK > allOKLimit {
			t.Errorf("kill %d: not every credential was read successfully within %s (after %s; missing %v)", k+1, allOKLimit, fmtDur(ev.allOK), ev.missing)
		}
	}
	if failedOutside > 0 {
		t.Errorf("%d reads failed outside any kill window", failedOutside)
	}
	if revoked > 0 {
		t.Errorf("%d reads handed out a token the vendor had revoked", revoked)
	}
	if heldHits == 0 {
		t.Errorf("no kill hit a rotating refresh whose answer was in transit: the test did not test a lost rotation")
	}
	for _, br := range breaks {
		if br.Outcome != "ok" {
			t.Errorf("%s: a lost rotation was not saved by the grace period: the vendor answered %s", br.Client, br.Outcome)
		}
	}
	for _, n := range []string{standin.VendorPenbox, standin.VendorGeneric} {
		if s := st[n]; s.ReuseDetections != 0 || s.Failures["invalid_grant"] != 0 {
			t.Errorf("vendor %s: %d reuse detections, %d invalid_grant: a chain was lost", n, s.ReuseDetections, s.Failures["invalid_grant"])
		}
	}
	if len(reauth) > 0 || len(unreadable) > 0 || len(noRefresh) > 0 {
		t.Errorf("credentials lost: need reauthorization %v, unreadable %v, cannot refresh %v", reauth, unreadable, noRefresh)
	}
}

func killFailed(kills []*killEvent) []int {
	out := make([]int, len(kills))
	for i, ev := range kills {
		out[i] = ev.failed
	}
	return out
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}

func sortedKeysInt(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// afterBreak says what the readers of a credential saw after its chain
// broke: tokens the vendor had revoked, and failed reads.
func afterBreak(reads []killRead, creds []killCred, br chainBreak, start time.Time) string {
	idx := -1
	for i, c := range creds {
		if c.client == br.Client {
			idx = i
		}
	}
	var (
		good, revoked, failed     int
		firstRevoked, lastRevoked time.Time
		firstFailed               time.Time
		firstFailure              string
	)
	for _, o := range reads {
		if o.cred != idx || o.sent.Before(br.At) {
			continue
		}
		switch {
		case o.failure != "":
			failed++
			if firstFailed.IsZero() {
				firstFailed, firstFailure = o.arrived, shorten(o.failure)
			}
		case o.revoked:
			revoked++
			if firstRevoked.IsZero() {
				firstRevoked = o.arrived
			}
			lastRevoked = o.arrived
		default:
			good++
		}
	}
	out := fmt.Sprintf("%d good reads", good)
	if revoked > 0 {
		out += fmt.Sprintf(", %d reads handed out a token the vendor had revoked (+%s to +%s, each with a warning)",
			revoked, firstRevoked.Sub(start).Round(time.Millisecond), lastRevoked.Sub(start).Round(time.Millisecond))
	}
	if failed > 0 {
		out += fmt.Sprintf(", %d reads failed from +%s: %s", failed, firstFailed.Sub(start).Round(time.Millisecond), firstFailure)
	}
	return out
}

// logLine is an hclog line at info or above: level and message.
var (
	logLine  = regexp.MustCompile(`\[(ERROR|WARN|INFO)\]\s+\S+: (.*)$`)
	logPairs = regexp.MustCompile(`:? [a-z_]+=`)
)

// pluginLogSummary counts the plugin's warnings and errors about the
// phase's credentials in Vault's log, by message.
func pluginLogSummary(log, phase string) string {
	counts := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "name=kill-"+phase+"-") {
			continue
		}
		m := logLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		msg := m[2]
		if loc := logPairs.FindStringIndex(msg); loc != nil {
			msg = msg[:loc[0]]
		}
		counts[m[1]+" "+msg]++
	}
	if len(counts) == 0 {
		return "nothing at info or above"
	}
	var parts []string
	for _, k := range sortedKeysInt(counts) {
		parts = append(parts, fmt.Sprintf("%d × %s", counts[k], k))
	}
	return strings.Join(parts, "; ")
}
