package backend

import (
	"bytes"
	"errors"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/outbound"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// Metrics are one mount's Prometheus metrics, in a registry of its own:
// one plugin process serves every mount, so nothing here is global. Every
// label is bounded by configuration, never by the number of credentials:
// an app, a token endpoint's host, a grant, a state, an OAuth error code
// from a fixed list. A credential's or connection's name is never a
// label (a mount may hold 100,000); drill down with status/<app>.
type Metrics struct {
	reg *prometheus.Registry

	reads       *prometheus.CounterVec
	readCache   prometheus.Counter
	readVendor  prometheus.Counter
	readStale   prometheus.Counter
	readError   prometheus.Counter
	vendor      *prometheus.CounterVec
	vendorTime  *prometheus.HistogramVec
	lifeUsed    *prometheus.HistogramVec
	background  *prometheus.CounterVec
	backgroundT *prometheus.GaugeVec
	events      *prometheus.CounterVec
	webhooks    *prometheus.CounterVec
	build       *prometheus.GaugeVec
	hosts       hostLabels

	versionOnce sync.Once
}

// Metric names, shared with the shipped alerting rules and dashboard
// (bootstrap/prometheus) and their tests.
const (
	MetricTokenReads        = "vendoroauth_token_reads_total"
	MetricVendorRequests    = "vendoroauth_vendor_requests_total"
	MetricVendorDuration    = "vendoroauth_vendor_request_duration_seconds"
	MetricCredentials       = "vendoroauth_credentials"
	MetricHeld              = "vendoroauth_refresh_tokens_held"
	MetricQueue             = "vendoroauth_refresh_queue"
	MetricLag               = "vendoroauth_refresh_lag_seconds"
	MetricLifeUsed          = "vendoroauth_token_life_used_ratio"
	MetricBackground        = "vendoroauth_background_refreshes_total"
	MetricBackgroundSuccess = "vendoroauth_background_refresh_last_success_timestamp_seconds"
	MetricClientRejected    = "vendoroauth_app_client_rejected"
	MetricEvents            = "vendoroauth_events_total"
	MetricEventsUnwritten   = "vendoroauth_events_unwritten"
	MetricWebhooks          = "vendoroauth_webhook_deliveries_total"
	MetricWebhookBacklog    = "vendoroauth_webhook_backlog_events"
	MetricWebhookFailing    = "vendoroauth_webhook_failing_seconds"
	MetricBuildInfo         = "vendoroauth_build_info"
	MetricIndexLoaded       = "vendoroauth_index_loaded"
)

// Token read outcomes.
const (
	ReadCache  = "cache"
	ReadVendor = "vendor_call"
	ReadStale  = "stale"
	ReadError  = "error"
)

// Vendor request outcomes besides an OAuth error code.
const (
	OutcomeOK          = "ok"
	OutcomeTransport   = "transport_failure"
	OutcomeRateLimited = "rate_limited"
	OutcomeOtherError  = "other_error"
)

// oauthCodes are the error codes a vendor request's outcome may carry as
// a label: RFC 6749 5.2 and 4.1.2.1, RFC 7009, RFC 8628 3.5. Any other
// code a vendor sends is other_error, so a vendor cannot grow the label.
var oauthCodes = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true, "access_denied": true, "server_error": true,
	"temporarily_unavailable": true, "unsupported_token_type": true, "authorization_pending": true,
	"slow_down": true, "expired_token": true,
}

// Credential states, for MetricCredentials.
const (
	StateStopped = "stopped"
	StateStatic  = "static"
)

func newMetrics() *Metrics {
	x := &Metrics{reg: prometheus.NewRegistry()}
	x.reads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricTokenReads,
		Help: "token/<name> reads by outcome: served from the cache, after a vendor call, a stale token with a warning, or an error."}, []string{"outcome"})
	x.readCache, x.readVendor = x.reads.WithLabelValues(ReadCache), x.reads.WithLabelValues(ReadVendor)
	x.readStale, x.readError = x.reads.WithLabelValues(ReadStale), x.reads.WithLabelValues(ReadError)
	x.vendor = prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricVendorRequests,
		Help: "Requests sent to vendors, by the endpoint's host, the grant (or revocation, device_authorization) and outcome: ok, an OAuth error code, rate_limited, transport_failure or other_error."}, []string{"host", "grant", "outcome"})
	x.vendorTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricVendorDuration,
		Help:    "How long vendor requests took, by host and grant.",
		Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"host", "grant"})
	x.lifeUsed = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricLifeUsed,
		Help:    "How much of a token's life had passed when it was replaced, by who replaced it: read (a reader found it past its hand-out end), background (ahead of need, or a keep-alive), forced (refresh/).",
		Buckets: []float64{.1, .25, .5, .75, .9, .95, .97, .99, 1, 1.5}}, []string{"trigger"})
	x.background = prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricBackground,
		Help: "Background refreshes (ahead of need and keep-alives) by app (\"\" for self-contained credentials) and outcome (ok, failed)."}, []string{"app", "outcome"})
	x.backgroundT = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricBackgroundSuccess,
		Help: "When a background refresh of the app's credentials last succeeded on this node (Unix time)."}, []string{"app"})
	x.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricEvents,
		Help: "Events written to the feeds, by type."}, []string{"type"})
	x.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricWebhooks,
		Help: "Webhook deliveries by app and outcome: ok, failed (retried), dropped (past the retry window, or pruned before delivery)."}, []string{"app", "outcome"})
	x.build = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricBuildInfo,
		Help: "The plugin's version and Go version; always 1."}, []string{"version", "goversion"})
	x.reg.MustRegister(x.reads, x.vendor, x.vendorTime, x.lifeUsed, x.background, x.backgroundT, x.events, x.webhooks, x.build)
	return x
}

// SetVersion records the plugin's version for MetricBuildInfo.
func (m *Manager) SetVersion(v string) {
	m.metrics.versionOnce.Do(func() { m.metrics.build.WithLabelValues(v, runtime.Version()).Set(1) })
}

// CountRead counts one token read by its outcome. A read that was handed
// to the active node (ErrReadOnly) is counted there.
func (m *Manager) CountRead(res *Result, err error) {
	x := m.metrics
	switch {
	case errors.Is(err, logical.ErrReadOnly):
	case err != nil || res == nil:
		x.readError.Inc()
	case res.Stale != nil:
		x.readStale.Inc()
	case res.Cached:
		x.readCache.Inc()
	default:
		x.readVendor.Inc()
	}
}

// VendorRequest implements outbound.Observer.
func (x *Metrics) VendorRequest(name, host, grant string, took time.Duration, err error) {
	host, gone := x.hosts.use(hostUser(name), host)
	x.dropHosts(gone)
	// A label the registry refuses must not fail the request it counts.
	if c, err2 := x.vendor.GetMetricWithLabelValues(host, grant, outcomeOf(err)); err2 == nil {
		c.Inc()
	}
	if h, err2 := x.vendorTime.GetMetricWithLabelValues(host, grant); err2 == nil {
		h.Observe(took.Seconds())
	}
}

// forgetCredential drops what the metrics keep of the credential name,
// deleted: a host no credential uses any more loses its series. A
// connection's hosts are its app's, and go with the app.
func (x *Metrics) forgetCredential(name string) {
	if model.AppOf(name) == "" {
		x.dropHosts(x.hosts.forget(hostUser(name)))
	}
}

// hostUser is who a request of the credential name counts as a user of a
// host for: a self-contained credential itself, a connection its app (named
// under it), so that the connections an app gains and loses (or the flows
// that never became one) do not each hold a host.
func hostUser(name string) string {
	if app := model.AppOf(name); app != "" {
		return "app\x00" + app
	}
	return name
}

func (x *Metrics) dropHosts(hosts []string) {
	for _, host := range hosts {
		x.vendor.DeletePartialMatch(prometheus.Labels{"host": host})
		x.vendorTime.DeletePartialMatch(prometheus.Labels{"host": host})
	}
}

// forgetApp drops the series of the app called name, deleted or without
// webhooks any more, whose values would mislead (an alert on a failing
// receiver nobody delivers to).
func (x *Metrics) forgetApp(name string) {
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{x.webhooks, x.background, x.backgroundT} {
		v.DeletePartialMatch(prometheus.Labels{"app": name})
	}
	x.dropHosts(x.hosts.forget("app\x00" + name))
}

// Host labels: a vendor request is counted under its endpoint's host, so
// an operator sees each vendor. The hosts are the credentials' own (a
// per-tenant vendor such as <tenant>.okta.com has one per customer), so the
// set of labels follows the credentials that use them: a host's series go
// when its last credential is deleted, and past maxHostLabels hosts the
// rest count as "other". A host that is not valid UTF-8 (a URL may
// percent-encode any byte) is shown with replacement characters.
const (
	maxHostLabels = 500
	hostOther     = "other"
	// maxHostsPerName bounds the hosts one credential is counted under
	// (its token, revocation and device endpoints, and earlier ones of a
	// rewritten config): the oldest is let go first.
	maxHostsPerName = 4
)

// hostLabels is which credentials use which host label.
type hostLabels struct {
	mu     sync.Mutex
	byName map[string][]string
	users  map[string]int
}

// use records that name sent a request to host, and returns its label and
// the hosts no credential uses any more (one let go for it).
func (h *hostLabels) use(name, host string) (string, []string) {
	if !utf8.ValidString(host) {
		host = strings.ToValidUTF8(host, "\uFFFD")
	}
	host = strings.ToLower(host)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byName == nil {
		h.byName, h.users = map[string][]string{}, map[string]int{}
	}
	hosts := h.byName[name]
	if slices.Contains(hosts, host) {
		return host, nil
	}
	var gone []string
	if len(hosts) >= maxHostsPerName {
		if h.releaseLocked(hosts[0]) {
			gone = append(gone, hosts[0])
		}
		hosts = hosts[1:]
	}
	if _, labelled := h.users[host]; !labelled && len(h.users) >= maxHostLabels {
		h.byName[name] = hosts
		return hostOther, gone
	}
	h.byName[name] = append(slices.Clip(hosts), host)
	h.users[host]++
	return host, gone
}

// forget lets name's hosts go, and returns those no credential uses now.
func (h *hostLabels) forget(name string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var gone []string
	for _, host := range h.byName[name] {
		if h.releaseLocked(host) {
			gone = append(gone, host)
		}
	}
	delete(h.byName, name)
	return gone
}

func (h *hostLabels) releaseLocked(host string) bool {
	if h.users[host]--; h.users[host] > 0 {
		return false
	}
	delete(h.users, host)
	return true
}

var _ outbound.Observer = (*Metrics)(nil)

// outcomeOf is a vendor request's outcome label.
func outcomeOf(err error) string {
	var ve *tokenclient.Error
	var te *tokenclient.TransportError
	switch {
	case err == nil:
		return OutcomeOK
	case errors.As(err, &ve) && ve.StatusCode == http.StatusTooManyRequests:
		// As GrantError.IsRateLimited says; a device poll's slow_down is
		// its own code.
		return OutcomeRateLimited
	case errors.As(err, &ve) && oauthCodes[ve.Code]:
		return ve.Code
	case errors.As(err, &te):
		return OutcomeTransport
	}
	return OutcomeOtherError
}

func (x *Metrics) event(typ string) { x.events.WithLabelValues(typ).Inc() }

func (x *Metrics) webhook(app, outcome string, n int) {
	x.webhooks.WithLabelValues(app, outcome).Add(float64(n))
}

// backgroundDone counts a background refresh of a credential of app.
func (x *Metrics) backgroundDone(app string, ok bool, now time.Time) {
	if ok {
		x.background.WithLabelValues(app, OutcomeOK).Inc()
		x.backgroundT.WithLabelValues(app).Set(float64(now.UnixNano()) / 1e9)
		return
	}
	x.background.WithLabelValues(app, "failed").Inc()
}

func triggerOf(md mode) string {
	switch md {
	case modeProactive:
		return "background"
	case modeForce:
		return "forced"
	}
	return "read"
}

// stateCollector reports, at each scrape, what the manager knows now:
// credentials by app and state, held refresh tokens, the refresh queue,
// events waiting for a write, rejected clients, webhook backlogs. Its cost
// follows the number of apps and of unhealthy credentials, not of
// connections.
type stateCollector struct{ m *Manager }

var (
	descCredentials = prometheus.NewDesc(MetricCredentials,
		"Credentials and connections by app (\"\" for self-contained credentials) and state: healthy, refreshing, backing_off, needs_reauthorization, stopped (after a lost answer, until an operator acts), static, static_expired. From the active node's index, and only once its load after a start has finished (vendoroauth_index_loaded).", []string{"app", "state"}, nil)
	descHeld = prometheus.NewDesc(MetricHeld,
		"Rotated refresh tokens held in memory because their storage write failed; they are lost if the plugin stops. Must be 0.", nil, nil)
	descQueue = prometheus.NewDesc(MetricQueue,
		"Credentials on the background refresher's schedule (ahead of need and keep-alives).", nil, nil)
	descLag = prometheus.NewDesc(MetricLag,
		"How late the most overdue scheduled background refresh is (0 when none is overdue).", nil, nil)
	descRejected = prometheus.NewDesc(MetricClientRejected,
		"Clients the vendor refuses (invalid_client), by app: 1 for an app until a grant with its client succeeds again; under app \"\" the number of self-contained credentials whose own client is refused.", []string{"app"}, nil)
	descUnwritten = prometheus.NewDesc(MetricEventsUnwritten,
		"Events whose write to the feed failed, kept in memory until it succeeds.", nil, nil)
	descBacklog = prometheus.NewDesc(MetricWebhookBacklog,
		"Events of the app's feed not yet delivered to its notify_url.", []string{"app"}, nil)
	descLoaded = prometheus.NewDesc(MetricIndexLoaded,
		"1 once this node's load of every credential after a start has finished: until then the state counts cover only what it has read (they climb after a start or a failover).", nil, nil)
	descFailing = prometheus.NewDesc(MetricWebhookFailing,
		"How long the app's webhook deliveries have been failing (0 while they succeed).", []string{"app"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCredentials, descLoaded, descHeld, descQueue, descLag, descRejected, descUnwritten, descBacklog, descFailing} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	now := m.now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// Until the load after a start has read every entry, the counts
	// would climb from zero, which a rule comparing them with a while ago
	// takes for a change: they are left out until then.
	loaded, _ := m.ScheduleState() // before the counts: they are complete if it was
	counts := m.stateCounts(now)
	if loaded {
		for app, states := range counts {
			for state, n := range states {
				gauge(descCredentials, float64(n), app, state)
			}
		}
	}
	gauge(descLoaded, map[bool]float64{false: 0, true: 1}[loaded])
	m.pendingMu.Lock()
	held := len(m.pending)
	m.pendingMu.Unlock()
	gauge(descHeld, float64(held))
	queued, earliest := m.sched.size(), m.sched.earliest()
	gauge(descQueue, float64(queued))
	lag := 0.0
	if !earliest.IsZero() && earliest.Before(now) {
		lag = now.Sub(earliest).Seconds()
	}
	gauge(descLag, lag)
	// A self-contained credential's name is never a label: they count
	// together under app "". Every app with credentials has the series,
	// so that it drops to 0 rather than vanishes.
	rejected := map[string]int{}
	for app := range counts {
		rejected[app] = 0
	}
	m.rejected.Range(func(k, _ any) bool {
		app := k.(string)
		if strings.HasPrefix(app, "/") {
			app = ""
		}
		rejected[app]++
		return true
	})
	for app, n := range rejected {
		gauge(descRejected, float64(n), app)
	}
	gauge(descUnwritten, float64(m.unwrittenEvents()))
	for app, d := range m.notifier.snapshot(m, now) {
		gauge(descBacklog, float64(d.backlog), app)
		gauge(descFailing, d.failing.Seconds(), app)
	}
}

// stateCounts counts every app's credentials by state ("" for the
// self-contained ones), every state present for every app that has any.
func (m *Manager) stateCounts(now time.Time) map[string]map[string]int {
	backingOff := map[string]bool{}
	m.healthMu.Lock()
	for name, h := range m.health {
		if h.lastErr != nil && now.Before(h.retryAt) {
			backingOff[name] = true
		}
	}
	m.healthMu.Unlock()
	refreshing := map[string]bool{}
	m.refreshing.Range(func(k, _ any) bool { refreshing[k.(string)] = true; return true })

	x := m.index
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[string]map[string]int{}
	state := map[string]string{}
	for name := range x.reauth {
		state[name] = StateReauth
	}
	for name := range x.stopped {
		if _, ok := state[name]; !ok {
			state[name] = StateStopped
		}
	}
	for name, exp := range x.static {
		if _, ok := state[name]; !ok {
			state[name] = StateStatic
			if !now.Before(exp) {
				state[name] = StateStaticGone
			}
		}
	}
	for _, set := range []struct {
		names map[string]bool
		st    string
	}{{backingOff, StateBackingOff}, {refreshing, StateRefreshing}} {
		for name := range set.names {
			if _, ok := state[name]; !ok {
				if _, known := x.info[name]; known {
					state[name] = set.st
				}
			}
		}
	}
	// The self-contained credentials always have their series, so a
	// dashboard of an empty mount shows zeros rather than nothing.
	apps := map[string]int{"": 0}
	for app, names := range x.names {
		apps[app] = len(names)
	}
	for app, n := range apps {
		counts := map[string]int{StateHealthy: n}
		for _, st := range []string{StateRefreshing, StateBackingOff, StateReauth, StateStopped, StateStatic, StateStaticGone} {
			counts[st] = 0
		}
		out[app] = counts
	}
	for name, st := range state {
		info, known := x.info[name]
		if !known {
			continue
		}
		counts := out[info.app]
		if counts == nil {
			continue
		}
		counts[st]++
		counts[StateHealthy]--
	}
	return out
}

// MetricsText is the mount's metrics in Prometheus's text exposition
// format, and its content type. On the node that can write, a scrape
// starts the load of every credential after a start if no tick has yet:
// until it finishes, the counts by state are left out.
func (m *Manager) MetricsText(s logical.Storage, writable bool) ([]byte, string, error) {
	if writable {
		m.loader.resume(m, s)
	}
	families, err := m.metrics.reg.Gather()
	if err != nil {
		return nil, "", err
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, format)
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return nil, "", err
		}
	}
	return buf.Bytes(), string(format), nil
}

// MetricNames lists every metric family the plugin exports, for the tests
// of what refers to them (the shipped rules and dashboard).
func MetricNames() []string {
	return []string{MetricTokenReads, MetricVendorRequests, MetricVendorDuration, MetricCredentials, MetricHeld,
		MetricQueue, MetricLag, MetricLifeUsed, MetricBackground, MetricBackgroundSuccess, MetricClientRejected,
		MetricEvents, MetricEventsUnwritten, MetricWebhooks, MetricWebhookBacklog, MetricWebhookFailing,
		MetricBuildInfo, MetricIndexLoaded}
}
