//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// partnerCallback is the partner's OAuth callback: registered for the
// client at the stand-in, and the app's only allowed redirect URI.
const partnerCallback = "https://partner.example/penbox/callback"

// partnerAppConfig is apps/<app> for a Penbox client at the stand-in base.
func partnerAppConfig(base string, v *standin.Vendor, clientID, secret string) map[string]interface{} {
	return map[string]interface{}{
		"provider": "penbox", "token_url": base + v.TokenPath(), "authorize_url": base + "/penbox/authorize",
		"client_id": clientID, "client_secret": secret, "allowed_redirect_uris": partnerCallback,
	}
}

// partnerConnect connects the account name (<app>/<account>) as a
// partner's web backend does: authorize/<name> with the callback and the
// partner's metadata, the user's browser through the stand-in's consent
// back to the callback, exchange/<name> with the code as it appears in the
// address bar. PKCE must be on without being asked for, and the stand-in
// checks the verifier.
func partnerConnect(t *testing.T, name string, metadata map[string]interface{}) {
	t.Helper()
	body := map[string]interface{}{"redirect_uri": partnerCallback}
	if metadata != nil {
		body["metadata"] = metadata
	}
	status, r, raw := call(t, "POST", mount+"/authorize/"+name, body)
	if status != 200 {
		t.Fatalf("authorize/%s: HTTP %d %s", name, status, raw)
	}
	u, err := url.Parse(str(r.Data["url"]))
	if err != nil || u.Query().Get("code_challenge") == "" || u.Query().Get("code_challenge_method") != "S256" ||
		u.Query().Get("redirect_uri") != partnerCallback {
		t.Fatalf("authorize/%s: URL %q has no S256 challenge or another redirect_uri", name, r.Data["url"])
	}
	code, state := browse(t, u.String())
	if state != str(r.Data["state"]) {
		t.Fatalf("authorize/%s: the vendor sent back another state", name)
	}
	status, _, raw = call(t, "POST", mount+"/exchange/"+name, map[string]interface{}{"code": code, "state": state})
	if status != 200 || strings.Contains(raw, "penbox-rt-") || strings.Contains(raw, "penbox-at-") {
		t.Fatalf("exchange/%s: HTTP %d %s", name, status, raw)
	}
}

// partnerRead is one token read by a background reader.
type partnerRead struct {
	name          string
	sent, arrived time.Time
	fail          string // "" for a good read
	warnings      []string
}

// partnerReaders read every connection's token continuously from several
// goroutines until stopped.
type partnerReaders struct {
	mu    sync.Mutex
	reads []partnerRead
	stop  atomic.Bool
	wg    sync.WaitGroup
}

func startPartnerReaders(v *standin.Vendor, names []string, readers int, pause time.Duration) *partnerReaders {
	pr := &partnerReaders{}
	for w := 0; w < readers; w++ {
		pr.wg.Add(1)
		go func(w int) {
			defer pr.wg.Done()
			for i := w * len(names) / readers; !pr.stop.Load(); i++ {
				name := names[i%len(names)]
				rd := partnerRead{name: name, sent: time.Now()}
				status, out, err := vault.Raw("GET", mount+"/token/"+name, nil)
				rd.arrived = time.Now()
				var r apiResponse
				if err == nil && len(out) > 0 {
					err = json.Unmarshal(out, &r)
				}
				tok := str(r.Data["access_token"])
				switch {
				case status != 200 || err != nil:
					rd.fail = fmt.Sprintf("HTTP %d %v %v", status, r.Errors, err)
				case !v.Valid(tok):
					rd.fail = "a token the vendor does not take (unknown, revoked or expired)"
				}
				rd.warnings = r.Warnings
				pr.mu.Lock()
				pr.reads = append(pr.reads, rd)
				pr.mu.Unlock()
				time.Sleep(pause)
			}
		}(w)
	}
	return pr
}

// finish stops the readers and returns every read.
func (pr *partnerReaders) finish() []partnerRead {
	pr.stop.Store(true)
	pr.wg.Wait()
	return pr.reads
}

// TestPartnerAppConnectionsAndSecretRotation is the partner case end to
// end: one Penbox app (client and allow-list), 50 accounts connected
// through authorize, the user's consent at the stand-in (which checks the
// redirect URI against the client's registered ones and the PKCE
// verifier) and exchange, each with the partner's metadata; every token
// read; LIST paging and status counts. Then, while readers read every
// connection's token continuously and tokens live 10 s, the client secret
// is rotated with one write to apps/<app>: no read fails, and the vendor
// sees the new secret from each connection's next refresh on (the old one
// is then retired at the vendor, and reads go on without a failure).
// Last, Vault gets a newer secret the vendor does not know yet: reads
// still succeed through the previous secret and say so, until the vendor
// learns the new one.
func TestPartnerAppConnectionsAndSecretRotation(t *testing.T) {
	const (
		app         = "partner-e2e"
		clientID    = "partner-e2e-client"
		connections = 50
		lifetime    = 10 * time.Second
		readers     = 4
		readPause   = 20 * time.Millisecond
	)
	secrets := []string{"partner-secret-1-" + randomHex(8), "partner-secret-2-" + randomHex(8), "partner-secret-3-" + randomHex(8)}
	handout := handoutLife(lifetime)
	// Long enough that every connection's token passes its hand-out end
	// and is refreshed at least once, a second after the window opens.
	window := handout + 2500*time.Millisecond

	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	v := vs.Vendor(standin.VendorPenbox)
	v.AddClient(standin.Client{ID: clientID, Secret: secrets[0], RedirectURIs: []string{partnerCallback}})
	v.SetBehavior(standin.Behavior{Lifetime: lifetime, Rotate: true, ReuseDetection: true})

	if status, r, _ := call(t, "POST", mount+"/apps/"+app, partnerAppConfig(base, v, clientID, secrets[0])); status != 204 {
		t.Fatalf("apps/%s: HTTP %d %v", app, status, r.Errors)
	}
	names := make([]string, connections)
	for i := range names {
		names[i] = fmt.Sprintf("%s/acct-%02d", app, i)
	}
	t.Cleanup(func() {
		for _, n := range names {
			call(t, "DELETE", mount+"/config/"+n, nil)
		}
		call(t, "DELETE", mount+"/apps/"+app, nil)
	})

	start := time.Now()
	for i, n := range names {
		partnerConnect(t, n, map[string]interface{}{"customer": fmt.Sprintf("cust-%02d", i)})
	}
	connectTook := time.Since(start)
	exchanges := v.Stats().ByGrantType["authorization_code"]
	t.Logf("connected %d accounts through authorize, consent and exchange in %s (%s each); the vendor saw %d code exchanges",
		connections, connectTook.Round(time.Millisecond), (connectTook / connections).Round(time.Millisecond), exchanges)
	if exchanges != connections {
		t.Errorf("the vendor saw %d code exchanges, want %d", exchanges, connections)
	}

	for i, n := range names {
		r := readToken(t, n)
		if !v.Valid(str(r.Data["access_token"])) || len(r.Warnings) != 0 {
			t.Fatalf("token/%s: not a valid vendor token, or warnings %v", n, r.Warnings)
		}
		status, cfg, raw := call(t, "GET", mount+"/config/"+n, nil)
		md, _ := cfg.Data["metadata"].(map[string]interface{})
		if status != 200 || cfg.Data["app"] != app || str(md["customer"]) != fmt.Sprintf("cust-%02d", i) ||
			cfg.Data["client_secret_set"] != true || cfg.Data["refresh_token_set"] != true || str(cfg.Data["client_id"]) != clientID {
			t.Errorf("config/%s: HTTP %d %v", n, status, cfg.Data)
		}
		for _, s := range append(secrets, "penbox-rt-", "penbox-at-") {
			if strings.Contains(raw, s) {
				t.Errorf("config/%s shows a secret", n)
			}
		}
	}

	// LIST pages through the app's connections, and narrows to it.
	var listed []string
	after := ""
	pages := 0
	for {
		status, r := listPage(t, mount+"/config/"+app+"/", after, 20)
		if status != 200 {
			t.Fatalf("LIST config/%s/ after %q: HTTP %d %v", app, after, status, r.Errors)
		}
		keys := toStrings(r.Data["keys"])
		pages++
		if len(keys) > 20 {
			t.Fatalf("LIST page %d has %d keys, limit 20", pages, len(keys))
		}
		listed = append(listed, keys...)
		next := str(r.Data["next"])
		if next == "" {
			break
		}
		if next != keys[len(keys)-1] {
			t.Errorf("page %d: next %q is not its last key %q", pages, next, keys[len(keys)-1])
		}
		after = next
		if pages > 10 {
			t.Fatal("LIST does not end")
		}
	}
	want := make([]string, connections)
	for i := range want {
		want[i] = fmt.Sprintf("acct-%02d", i)
	}
	if pages != 3 || !slices.Equal(listed, want) {
		t.Errorf("LIST config/%s/ in pages of 20: %d pages, %v; want 3 pages of the 50 accounts in order", app, pages, listed)
	}
	if status, r, _ := call(t, "LIST", mount+"/config/"+app, nil); status != 200 || !slices.Equal(toStrings(r.Data["keys"]), want) || str(r.Data["next"]) != "" {
		t.Errorf("LIST config/%s/ without a limit: HTTP %d %v", app, status, r.Data)
	}
	status, top, _ := call(t, "LIST", mount+"/config", nil)
	for _, k := range toStrings(top.Data["keys"]) {
		if strings.HasPrefix(k, app+"/acct-") {
			t.Errorf("LIST config/ lists the connection %q one by one", k)
			break
		}
	}
	t.Logf("LIST config/ (HTTP %d) shows for the app: %v", status, keysWithPrefix(toStrings(top.Data["keys"]), app))
	if status, r, _ := call(t, "LIST", mount+"/apps", nil); status != 200 || !slices.Contains(toStrings(r.Data["keys"]), app) {
		t.Errorf("LIST apps/: HTTP %d %v", status, r.Data)
	}
	expectAppCounts(t, app, connections, connections)
	status, st, _ := call(t, "GET", mount+"/status", nil)
	apps, _ := st.Data["apps"].(map[string]interface{})
	counts, _ := apps[app].(map[string]interface{})
	if status != 200 || counts["total"] != float64(connections) || counts["healthy"] != float64(connections) {
		t.Errorf("status: HTTP %d, apps[%s] = %v", status, app, apps[app])
	}

	// Rotation while readers run.
	v.Reset()
	readersFrom := time.Now()
	pr := startPartnerReaders(v, names, readers, readPause)
	defer pr.finish()
	// Rotate in the middle of a round of refreshes: half the connections
	// have just refreshed with the old secret, the others are about to.
	deadline := time.Now().Add(2 * window)
	for v.Stats().ByGrantType["refresh_token"] < connections/2 {
		if time.Now().After(deadline) {
			t.Fatalf("the readers caused %d refreshes in %s", v.Stats().ByGrantType["refresh_token"], 2*window)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The vendor's console issues the new secret; the old one stays valid
	// until it is deleted there. Then one write reaches every connection.
	v.AddClientSecret(clientID, secrets[1])
	rotSent := time.Now()
	status, _, raw := call(t, "POST", mount+"/apps/"+app, map[string]interface{}{"client_secret": secrets[1]})
	rotDone := time.Now()
	if status != 204 {
		t.Fatalf("rotating the client secret: HTTP %d %s", status, raw)
	}
	t.Logf("the rotation write took %s, after %d of %d connections had refreshed with the old secret in this round", rotDone.Sub(rotSent).Round(time.Millisecond), v.Stats().ByGrantType["refresh_token"], connections)
	time.Sleep(time.Until(rotDone.Add(window)))

	// Every connection refreshed since the write (a second after it, to
	// be clear of the second-resolution timestamps).
	since := rotDone.Truncate(time.Second).Add(time.Second)
	for _, n := range names {
		_, cfg, _ := call(t, "GET", mount+"/config/"+n, nil)
		at, err := time.Parse(time.RFC3339, str(cfg.Data["last_refreshed_at"]))
		if err != nil || at.Before(since) {
			t.Errorf("%s: last refreshed at %v, not since the rotation (%s)", n, cfg.Data["last_refreshed_at"], since.Format(time.RFC3339))
		}
	}
	_, appRead, raw := call(t, "GET", mount+"/apps/"+app, nil)
	if appRead.Data["client_secret_set"] != true || str(appRead.Data["previous_client_secret_until"]) == "" {
		t.Errorf("apps/%s after the rotation: %v", app, appRead.Data)
	}
	for _, s := range secrets {
		if strings.Contains(raw, s) {
			t.Errorf("apps/%s shows a client secret", app)
		}
	}
	// The vendor's console deletes the old secret: nothing uses it.
	retired := time.Now()
	v.RemoveClientSecret(clientID, secrets[0])
	time.Sleep(6 * time.Second)

	// Overlap: Vault gets a newer secret than the vendor knows.
	overlapSent := time.Now()
	if status, r, _ := call(t, "POST", mount+"/apps/"+app, map[string]interface{}{"client_secret": secrets[2]}); status != 204 {
		t.Fatalf("writing a secret the vendor does not know yet: HTTP %d %v", status, r.Errors)
	}
	overlapDone := time.Now()
	time.Sleep(time.Until(overlapDone.Add(window)))
	expectAppCounts(t, app, connections, -1)
	// The vendor learns it; a while later the console deletes the one
	// before it.
	learned := time.Now()
	v.AddClientSecret(clientID, secrets[2])
	time.Sleep(time.Second)
	v.RemoveClientSecret(clientID, secrets[1])
	time.Sleep(time.Until(learned.Add(window)))
	reads := pr.finish()
	end := time.Now()

	// The readers' view.
	const previousWarning = "accepted its previous one"
	var failed []string
	warnedOverlap := map[string]int{}
	otherWarnings := 0
	perPhase := map[string]int{}
	phaseOf := func(at time.Time) string {
		switch {
		case at.Before(rotSent):
			return "before the rotation"
		case at.Before(retired):
			return "after the rotation"
		case at.Before(overlapSent):
			return "old secret deleted at the vendor"
		case at.Before(learned):
			return "overlap (vendor behind)"
		}
		return "vendor caught up"
	}
	for _, rd := range reads {
		perPhase[phaseOf(rd.sent)]++
		if rd.fail != "" {
			failed = append(failed, fmt.Sprintf("%s %s (%s): %s", rd.sent.Format("15:04:05.000"), rd.name, phaseOf(rd.sent), rd.fail))
		}
		for _, w := range rd.warnings {
			switch {
			case strings.Contains(w, previousWarning) && !rd.sent.Before(overlapSent) && rd.sent.Before(learned.Add(time.Second)):
				warnedOverlap[rd.name]++
			default:
				otherWarnings++
				if otherWarnings <= 5 {
					t.Errorf("%s %s (%s): unexpected warning %q", rd.sent.Format("15:04:05.000"), rd.name, phaseOf(rd.sent), w)
				}
			}
		}
	}
	t.Logf("%d reads by %d readers over %s: %v; %d failed", len(reads), readers, end.Sub(readersFrom).Round(time.Second), perPhase, len(failed))
	if len(failed) > 0 {
		t.Errorf("%d of %d reads failed; first: %s", len(failed), len(reads), strings.Join(failed[:min(5, len(failed))], "; "))
	}
	if otherWarnings > 0 {
		t.Errorf("%d reads carried warnings other than the overlap's", otherWarnings)
	}
	var notWarned []string
	for _, n := range names {
		if warnedOverlap[n] == 0 {
			notWarned = append(notWarned, n)
		}
	}
	if len(notWarned) > 0 {
		t.Errorf("%d connections were refreshed during the overlap without a read saying the previous secret was used: %v", len(notWarned), notWarned)
	}
	t.Logf("overlap: %d connections' reads said the previous secret worked (%d such reads)", len(warnedOverlap), sum(valuesOf(warnedOverlap)))

	// The vendor's view: which secret each refresh carried, and when.
	type tally struct{ bySecret [3]int }
	phases := map[string]*tally{}
	order := []string{"before the rotation", "after the rotation", "old secret deleted at the vendor", "overlap (vendor behind)", "vendor caught up"}
	for _, p := range order {
		phases[p] = &tally{}
	}
	var lateOld []time.Duration
	var firstNew time.Time
	for _, req := range v.Requests() {
		if req.Form["grant_type"] != "refresh_token" {
			continue
		}
		idx := slices.Index(secrets, req.Form["client_secret"])
		if idx < 0 {
			t.Errorf("a refresh at %s carried an unknown client secret", req.At.Format("15:04:05.000"))
			continue
		}
		phases[phaseOf(req.At)].bySecret[idx]++
		if idx == 0 && req.At.After(rotDone) {
			lateOld = append(lateOld, req.At.Sub(rotDone))
		}
		if idx == 1 && firstNew.IsZero() && req.At.After(rotSent) {
			firstNew = req.At
		}
	}
	for _, p := range order {
		t.Logf("vendor, %s: refreshes with secret 1/2/3: %v", p, phases[p].bySecret)
	}
	t.Logf("first refresh with the new secret %s after the rotation write returned", firstNew.Sub(rotDone).Round(time.Millisecond))
	// A refresh that had its settings before the write may still be on
	// the wire when it returns; nothing after that may use the old secret.
	for _, d := range lateOld {
		if d > 250*time.Millisecond {
			t.Errorf("a refresh %s after the rotation still carried the old client secret", d.Round(time.Millisecond))
		}
	}
	if n := len(lateOld); n > 0 {
		t.Logf("%d refreshes in flight during the rotation write carried the old secret (each within %s of it)", n, 250*time.Millisecond)
	}
	if p := phases["before the rotation"].bySecret; p[0] < connections/2 || p[1] != 0 || p[2] != 0 {
		t.Errorf("before the rotation the vendor saw refreshes by secret %v; want at least %d with the old one and no other", p, connections/2)
	}
	if p := phases["after the rotation"].bySecret; p[1] < connections {
		t.Errorf("after the rotation the vendor saw %d refreshes with the new secret, want at least one per connection (%d)", p[1], connections)
	}
	if p := phases["old secret deleted at the vendor"].bySecret; p[0] != 0 || p[2] != 0 {
		t.Errorf("after the old secret was deleted at the vendor: refreshes by secret %v, want only the new one", p)
	}
	if p := phases["overlap (vendor behind)"].bySecret; p[2] < connections || p[1] < connections {
		t.Errorf("during the overlap: refreshes by secret %v; want each connection to try the newest and succeed with the previous", p)
	}
	if p := phases["vendor caught up"].bySecret; p[2] < connections {
		t.Errorf("once the vendor knew the newest secret: refreshes by secret %v, want the newest for every connection", p)
	}
	st2 := v.Stats()
	if st2.ReuseDetections != 0 {
		t.Errorf("the vendor saw a rotated-away refresh token %d times", st2.ReuseDetections)
	}
	t.Logf("vendor failures by code since the readers started: %v", st2.Failures)
	expectAppCounts(t, app, connections, connections)
}

// expectAppCounts checks status/<app>: total connections, and healthy
// ones unless healthy is -1 (then only that none is backing off or needs
// reauthorization).
func expectAppCounts(t *testing.T, app string, total, healthy int) {
	t.Helper()
	status, r, raw := call(t, "GET", mount+"/status/"+app, nil)
	counts, _ := r.Data["counts"].(map[string]interface{})
	bad := counts["backing_off"] != float64(0) || counts["needs_reauthorization"] != float64(0) || counts["static_expired"] != float64(0)
	if status != 200 || counts["total"] != float64(total) || bad || (healthy >= 0 && counts["healthy"] != float64(healthy)) {
		t.Errorf("status/%s: HTTP %d %s; want %d connections, %d healthy", app, status, raw, total, healthy)
	}
	if unhealthy, _ := r.Data["unhealthy"].([]interface{}); healthy >= 0 && len(unhealthy) != total-healthy {
		t.Errorf("status/%s lists unhealthy %v", app, r.Data["unhealthy"])
	}
}

// listPage is one LIST of path with the paging parameters in the query
// string, where Vault takes a LIST's parameters from.
func listPage(t *testing.T, path, after string, limit int) (int, apiResponse) {
	t.Helper()
	req := vault.Client.NewRequest("LIST", "/v1/"+path)
	if after != "" {
		req.Params.Set("after", after)
	}
	if limit > 0 {
		req.Params.Set("limit", fmt.Sprint(limit))
	}
	// A LIST with query parameters: no non-deprecated call of the API
	// client sends one (Logical().List sends GET ?list=true).
	resp, err := vault.Client.RawRequestWithContext(context.Background(), req) //nolint:staticcheck // SA1019: see above
	if resp == nil {
		t.Fatalf("LIST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var r apiResponse
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r
}

func keysWithPrefix(keys []string, prefix string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

func valuesOf(m map[string]int) []int {
	out := make([]int, 0, len(m))
	for _, n := range m {
		out = append(out, n)
	}
	return out
}

// TestPartnerMistakesAreClear400s: a redirect URI outside the app's
// allow-list, an unknown app, a connection whose app was deleted, and a
// state issued for another connection are each a 400 that says what is
// wrong, changes nothing in Vault and costs no vendor request.
func TestPartnerMistakesAreClear400s(t *testing.T) {
	const (
		app      = "partner-400"
		gone     = "partner-400-gone"
		clientID = "partner-400-client"
		secret   = "partner-400-secret-Qw7"
	)
	// A stand-in of its own, so no other test's traffic or behaviour
	// counts.
	vs := standin.New()
	baseURL, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	v := vs.Vendor(standin.VendorPenbox)
	v.AddClient(standin.Client{ID: clientID, Secret: secret, RedirectURIs: []string{partnerCallback}})
	for _, a := range []string{app, gone} {
		if status, r, _ := call(t, "POST", mount+"/apps/"+a, partnerAppConfig(baseURL, v, clientID, secret)); status != 204 {
			t.Fatalf("apps/%s: HTTP %d %v", a, status, r.Errors)
		}
	}
	conns := []string{app + "/a", app + "/b", gone + "/x"}
	t.Cleanup(func() {
		for _, n := range append(conns, app+"/c", app+"/new", "partner-400-nope/a", "partner-400-nope-b") {
			call(t, "DELETE", mount+"/config/"+n, nil)
		}
		call(t, "DELETE", mount+"/apps/"+app, nil)
		call(t, "DELETE", mount+"/apps/"+gone, nil)
	})
	for _, n := range conns {
		partnerConnect(t, n, map[string]interface{}{"customer": n})
	}
	tokens := map[string]string{}
	for _, n := range conns {
		tokens[n] = str(readToken(t, n).Data["access_token"])
	}

	// snapshot is what a refused request must not change: the apps, the
	// app's connections and each one's stored settings and status (not
	// this node's counters), and the vendor's traffic.
	snapshot := func() string {
		t.Helper()
		var b strings.Builder
		for _, p := range []string{"apps", "config/" + app, "config/" + gone} {
			_, r, _ := call(t, "LIST", mount+"/"+p, nil)
			fmt.Fprintf(&b, "LIST %s: %v\n", p, toStrings(r.Data["keys"]))
		}
		for _, n := range append(conns, app+"/c", app+"/new", "partner-400-nope/a", "partner-400-nope-b") {
			status, r, _ := call(t, "GET", mount+"/config/"+n, nil)
			for _, k := range []string{"reads", "cache_hits", "upstream_grants", "failures", "next_refresh_at", "backoff_until"} {
				delete(r.Data, k)
			}
			fmt.Fprintf(&b, "config/%s: %d %s\n", n, status, fmtJSON(r.Data))
		}
		fmt.Fprintf(&b, "vendor requests from the client: %d\n", len(requestsFrom(v, clientID)))
		return b.String()
	}
	expect400 := func(t *testing.T, what, method, path string, body map[string]interface{}, words ...string) {
		t.Helper()
		before := snapshot()
		status, r, raw := call(t, method, mount+"/"+path, body)
		msg := strings.Join(r.Errors, " ")
		if status != 400 {
			t.Errorf("%s: HTTP %d %s, want 400", what, status, raw)
		}
		for _, w := range words {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: the error %q does not say %q", what, msg, w)
			}
		}
		if after := snapshot(); after != before {
			t.Errorf("%s changed something:\nbefore:\n%s\nafter:\n%s", what, before, after)
		}
		t.Logf("%s: HTTP %d %q", what, status, msg)
	}

	t.Run("redirect outside the allow-list", func(t *testing.T) {
		for _, n := range []string{app + "/c", app + "/a"} {
			expect400(t, "authorize/"+n+" to evil.example", "POST", "authorize/"+n,
				map[string]interface{}{"redirect_uri": "https://evil.example/penbox/callback"}, "allowed_redirect_uris", app, partnerCallback)
			expect400(t, "authorize/"+n+" to the callback with another query", "POST", "authorize/"+n,
				map[string]interface{}{"redirect_uri": partnerCallback + "?next=/admin"}, "allowed_redirect_uris")
		}
	})
	t.Run("unknown app", func(t *testing.T) {
		expect400(t, "authorize for an unknown app", "POST", "authorize/partner-400-nope/a",
			map[string]interface{}{"redirect_uri": partnerCallback}, `no app "partner-400-nope"`, "apps/partner-400-nope")
		expect400(t, "a connection of an unknown app", "POST", "config/partner-400-nope/a",
			map[string]interface{}{"metadata": "customer=z"}, "partner-400-nope")
		expect400(t, "authorize naming an unknown app", "POST", "authorize/partner-400-nope-b",
			map[string]interface{}{"redirect_uri": partnerCallback, "app": "partner-400-nope"}, "partner-400-nope")
	})
	t.Run("state from another connection", func(t *testing.T) {
		status, r, raw := call(t, "POST", mount+"/authorize/"+app+"/a", map[string]interface{}{"redirect_uri": partnerCallback})
		if status != 200 {
			t.Fatalf("authorize/%s/a: HTTP %d %s", app, status, raw)
		}
		code, state := browse(t, str(r.Data["url"]))
		for _, other := range []string{app + "/b", app + "/new"} {
			expect400(t, "exchange/"+other+" with a's state", "POST", "exchange/"+other,
				map[string]interface{}{"code": code, "state": state}, "state")
		}
		// Nothing was spent: a's own flow still finishes, and b kept its
		// token.
		if status, _, raw := call(t, "POST", mount+"/exchange/"+app+"/a", map[string]interface{}{"code": code, "state": state}); status != 200 {
			t.Errorf("exchange/%s/a with its own state after the refusals: HTTP %d %s", app, status, raw)
		}
		if got := str(readToken(t, app+"/b").Data["access_token"]); got != tokens[app+"/b"] {
			t.Errorf("%s/b's token changed", app)
		}
	})
	t.Run("connection whose app was deleted", func(t *testing.T) {
		n := gone + "/x"
		// The delete says how many connections it leaves without an app.
		if status, r, raw := call(t, "DELETE", mount+"/apps/"+gone, nil); status != 200 || !strings.Contains(strings.Join(r.Warnings, " "), "connection") {
			t.Fatalf("deleting apps/%s: HTTP %d %s, want a warning about the connections it leaves", gone, status, raw)
		}
		expect400(t, "token/"+n+" after its app was deleted", "GET", "token/"+n, nil, `app "`+gone+`"`, "does not exist", "apps/"+gone)
		expect400(t, "refresh/"+n+" after its app was deleted", "POST", "refresh/"+n, nil, "does not exist")
		// The connection kept everything: with the app back, its cached
		// token is served again without a vendor request.
		if status, r, _ := call(t, "POST", mount+"/apps/"+gone, partnerAppConfig(baseURL, v, clientID, secret)); status != 204 {
			t.Fatalf("apps/%s again: HTTP %d %v", gone, status, r.Errors)
		}
		before := len(requestsFrom(v, clientID))
		if got := str(readToken(t, n).Data["access_token"]); got != tokens[n] {
			t.Errorf("%s: the token after the app came back is not the one cached before", n)
		}
		if d := len(requestsFrom(v, clientID)) - before; d != 0 {
			t.Errorf("%s: %d vendor requests after the app came back", n, d)
		}
	})
}
