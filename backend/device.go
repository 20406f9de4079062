package backend

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/outbound"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// deviceRetention is how long after its codes expire (when every flow is
// over) a device flow can still be read; then the tick deletes it, so
// finished flows are not listed and read on every tick forever.
const deviceRetention = 24 * time.Hour

// DeviceRequest starts a device flow.
type DeviceRequest struct {
	Scopes   []string
	App      string
	Metadata map[string]string
}

// StartDevice starts a device authorization for name (a connection of an
// app needs no config first) and polls for the user's decision in the
// background on this node, at the vendor's interval.
func (m *Manager) StartDevice(ctx context.Context, s logical.Storage, name string, r DeviceRequest) (*model.DeviceFlow, error) {
	unlock, err := m.lockName(ctx, "device", name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	e, err := m.current(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if err := checkFlowMetadata(e, r.Metadata); err != nil {
		return nil, err
	}
	fl, err := m.deviceFlowFor(ctx, s, name, e, r.App)
	if err != nil {
		return nil, err
	}
	call, err := m.callFor(ctx, s, name, &fl.eff, fl.settings)
	if err != nil {
		return nil, err
	}
	if len(r.Scopes) > 0 {
		call.Req.Scopes = r.Scopes
	}
	if !m.inflight.start() {
		return nil, ErrClosed
	}
	da, err := m.gate.StartDevice(ctx, call, fl.settings.DeviceAuthorizationURL)
	m.inflight.done()
	if err != nil {
		return nil, &GrantError{Name: name, App: fl.eff.App, Vendor: fl.settings.Preset.DisplayName, Preset: fl.settings.Preset, Grant: providers.GrantDeviceCode, AuthStyle: fl.settings.AuthStyle, Endpoint: fieldDeviceAuthorizationURL, Err: err}
	}
	now := m.now()
	// The device code may go only to the token endpoint of now: a write
	// that moves it later cancels the flow, and a poll sends it nowhere
	// else.
	bound := model.AccountDestination(fl.settings)
	d := &model.DeviceFlow{
		UserCode: da.UserCode, VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete,
		ExpiresAt: now.Add(da.ExpiresIn), Interval: da.Interval, State: model.DevicePending, StartedAt: now,
		App: fl.appName, Metadata: r.Metadata, Scopes: r.Scopes, DeviceCode: da.DeviceCode, Existing: e != nil, Bound: &bound,
	}
	if err := writeDevice(ctx, s, name, d); err != nil {
		return nil, err
	}
	m.devices.poll(m, s, name)
	out := *d
	out.DeviceCode = ""
	return &out, nil
}

// deviceFlowFor resolves what a device flow acts with, like an
// authorization's, with a device authorization endpoint instead.
func (m *Manager) deviceFlowFor(ctx context.Context, s logical.Storage, name string, e *model.Entry, appName string) (*flow, error) {
	f, err := m.connectionFlow(ctx, s, name, e, appName)
	if err != nil {
		return nil, err
	}
	if f.settings.DeviceAuthorizationURL == "" {
		return nil, &InputError{Msg: fmt.Sprintf("credential %q has no device authorization endpoint: set device_authorization_url, or issuer for one the vendor publishes", name)}
	}
	if !f.settings.Preset.SupportsGrant(model.ConnectedGrant().Name) {
		return nil, &InputError{Msg: fmt.Sprintf("provider %s does not take refresh tokens, so credential %q cannot connect an account", f.settings.Preset.Name, name)}
	}
	return f, nil
}

// Device returns name's device flow, without its device code, or nil.
func (m *Manager) Device(ctx context.Context, s logical.Storage, name string) (*model.DeviceFlow, error) {
	d, err := readDevice(ctx, s, name)
	if err != nil || d == nil {
		return nil, err
	}
	if m.now().After(d.ExpiresAt.Add(deviceRetention)) {
		return nil, nil // the tick deletes it
	}
	if d.State == model.DevicePending && m.now().After(d.ExpiresAt) {
		d.State = model.DeviceExpired
	}
	d.DeviceCode = ""
	return d, nil
}

func readDevice(ctx context.Context, s logical.Storage, name string) (*model.DeviceFlow, error) {
	return store.Of(s).Device(ctx, name)
}

func writeDevice(ctx context.Context, s logical.Storage, name string, d *model.DeviceFlow) error {
	return store.Of(s).PutDevice(ctx, name, d)
}

// devicePollers runs one poller per pending device flow, on the node that
// can write: like the refresher, they stop when the backend closes and
// when a tick finds the node cannot write, and the next tick that finds it
// writable resumes them.
type devicePollers struct {
	mu      sync.Mutex
	running map[string]*devicePoller
}

type devicePoller struct{ stop context.CancelFunc }

// poll starts polling name's flow unless a poller runs for it.
func (p *devicePollers) poll(m *Manager, s logical.Storage, name string) {
	p.mu.Lock()
	if p.running == nil {
		p.running = map[string]*devicePoller{}
	}
	// The poller waits out intervals for minutes: only its polls count as
	// work in flight (pollOnce), or Close would always wait for it.
	if p.running[name] != nil || m.life.Err() != nil {
		p.mu.Unlock()
		return
	}
	ctx, stop := context.WithCancel(m.life)
	me := &devicePoller{stop: stop}
	p.running[name] = me
	p.mu.Unlock()
	go func() {
		defer m.recoverBackground("device flow", name)
		defer func() {
			stop()
			p.mu.Lock()
			// A poller started after this one was stopped is not ours to
			// forget.
			if p.running[name] == me {
				delete(p.running, name)
			}
			p.mu.Unlock()
		}()
		m.pollDevice(ctx, s, name)
	}()
}

// stop stops name's poller, if one runs.
func (p *devicePollers) stop(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.running[name]; r != nil {
		r.stop()
		delete(p.running, name)
	}
}

// halt stops every poller; a poll in flight finishes and stores what it
// got.
func (p *devicePollers) halt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, r := range p.running {
		r.stop()
		delete(p.running, name)
	}
}

// resume starts pollers for the pending flows in storage, after a start.
func (p *devicePollers) resume(m *Manager, s logical.Storage) {
	names, err := store.Of(s).DeviceNames(m.life)
	if err != nil {
		return
	}
	for _, name := range names {
		d, err := readDevice(m.life, s, name)
		switch {
		case err != nil || d == nil:
		case m.now().After(d.ExpiresAt.Add(deviceRetention)):
			m.forgetDevice(s, name)
		case d.State == model.DevicePending:
			p.poll(m, s, name)
		}
	}
}

// forgetDevice deletes name's device flow once it is past its retention,
// under name's lock so a flow started meanwhile is kept. The tick calls no
// vendor and must not wait for one: a name busy with a vendor call is left
// for a later tick.
func (m *Manager) forgetDevice(s logical.Storage, name string) {
	wait, cancel := context.WithTimeout(m.life, 100*time.Millisecond)
	defer cancel()
	unlock, err := m.lockName(wait, "device cleanup", name)
	if err != nil {
		return
	}
	defer unlock()
	d, err := readDevice(m.life, s, name)
	if err != nil || d == nil || !m.now().After(d.ExpiresAt.Add(deviceRetention)) {
		return
	}
	if err := store.Of(s).DeleteDevice(m.life, name); err != nil {
		m.logger.Warn("deleting a finished device flow failed; the next tick tries again", "name", name, "error", err)
	}
}

// pollDevice polls name's device flow until the user decides, the codes
// expire or the backend closes, honouring the interval and slow_down.
func (m *Manager) pollDevice(ctx context.Context, s logical.Storage, name string) {
	for {
		d, err := readDevice(ctx, s, name)
		if err != nil || d == nil || d.State != model.DevicePending {
			return
		}
		if m.now().After(d.ExpiresAt) {
			d.State, d.DeviceCode = model.DeviceExpired, ""
			_ = writeDevice(ctx, s, name, d)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.Interval):
		}
		if done := m.pollOnce(ctx, s, name); done {
			return
		}
	}
}

// pollOnce makes one poll and records its outcome; true when the flow is
// over or this poller must stop. ctx stops only what may begin: an answer
// that came is stored whatever happens to ctx, since an approval's refresh
// token exists nowhere else.
func (m *Manager) pollOnce(ctx context.Context, s logical.Storage, name string) bool {
	unlock, err := m.lockName(ctx, "device poll", name)
	if err != nil {
		return true
	}
	defer unlock()
	// Read again under the lock: a delete of the credential while this
	// poller waited deleted its flow too, and polling on would bring the
	// credential back on approval.
	d, err := readDevice(ctx, s, name)
	if err != nil {
		return ctx.Err() != nil
	}
	if d == nil || d.State != model.DevicePending {
		return true
	}
	e, err := m.current(ctx, s, name)
	if err != nil {
		return ctx.Err() != nil
	}
	if e == nil && d.Existing {
		d.State, d.Detail, d.DeviceCode = model.DeviceFailed, "the credential was deleted while the flow was pending", ""
		_ = writeDevice(ctx, s, name, d)
		return true
	}
	fl, err := m.deviceFlowFor(ctx, s, name, e, d.App)
	if err != nil {
		d.State, d.Detail, d.DeviceCode = model.DeviceFailed, err.Error(), ""
		_ = writeDevice(ctx, s, name, d)
		return true
	}
	if d.Bound == nil {
		d.State, d.Detail, d.DeviceCode = model.DeviceFailed, "the flow was started by an earlier release of the plugin, which did not record where its device code may be sent; start it again", ""
		_ = writeDevice(ctx, s, name, d)
		return true
	}
	call, err := m.callFor(ctx, s, name, &fl.eff, fl.settings)
	if err != nil {
		return ctx.Err() != nil
	}
	call = call.With(tokenclient.ParamRef("device_code"), *d.Bound)
	// Prove this node can still write before the vendor hands over a
	// refresh token that only a write can keep; the next tick that finds
	// the node writable resumes the flow.
	if err := m.probeWrite(ctx, s); err != nil {
		m.logger.Warn("device polling stopped: this node cannot write storage; the next periodic tick resumes it if it can", "name", name, "error", err)
		return true
	}
	if ctx.Err() != nil || !m.inflight.start() {
		return true
	}
	defer m.inflight.done()
	// The poll runs for the backend's lifetime, not the poller's: a node
	// that stops being writable while it is in flight still gets, and
	// stores, its answer.
	pctx, cancel := m.detached(grantTimeout)
	defer cancel()
	sentAt := m.now()
	res, err := m.gate.PollDevice(pctx, call, d.DeviceCode, d.Interval)
	if outbound.Refused(err) {
		// Nothing was sent, and nothing will be: where the flow's
		// secrets may go is not where the credential sends now.
		m.logger.Warn("a device flow stopped: its device code may not go where the credential sends now", "name", name, "error", err.Error())
		d.State, d.Detail, d.DeviceCode = model.DeviceFailed, err.Error(), ""
		_ = writeDevice(ctx, s, name, d)
		return true
	}
	if err != nil {
		// A transport or server failure: try again at the next interval.
		m.logger.Warn("polling a device authorization failed; trying again", "name", name, "error", err.Error())
		return false
	}
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer wcancel()
	return m.recordPoll(wctx, s, name, e, fl, d, res, sentAt)
}

// recordPoll stores what a poll got; true when the flow is over.
func (m *Manager) recordPoll(ctx context.Context, s logical.Storage, name string, e *model.Entry, fl *flow, d *model.DeviceFlow, res *tokenclient.DevicePoll, sentAt time.Time) bool {
	switch res.Status {
	case tokenclient.DevicePending:
		return false
	case tokenclient.DeviceSlowDown:
		d.Interval = res.Interval
		_ = writeDevice(ctx, s, name, d)
		return false
	case tokenclient.DeviceDenied:
		d.State, d.DeviceCode = model.DeviceDenied, ""
		d.Detail = deviceDetail("the user denied the request at the vendor", res.Answer, name)
	case tokenclient.DeviceExpired:
		d.State, d.DeviceCode = model.DeviceExpired, ""
		d.Detail = deviceDetail("the codes expired before the user approved", res.Answer, name)
	case tokenclient.DeviceApproved:
		if err := m.storeDeviceTokens(ctx, s, name, e, fl, d, res.Token, sentAt); err != nil {
			d.State, d.Detail = model.DeviceFailed, err.Error()
		} else {
			d.State = model.DeviceApproved
		}
		d.DeviceCode = ""
	}
	if err := writeDevice(ctx, s, name, d); err != nil {
		m.logger.Warn("recording the end of a device flow failed", "name", name, "error", err)
	}
	return true
}

// deviceDetail is what a read of a device flow that ended without a token
// says: what happened, the vendor's own words (its error_description,
// redacted and cleaned by tokenclient), and how to start again, with the
// mount for the path layer to fill in.
func deviceDetail(what string, answer *tokenclient.Error, name string) string {
	if answer != nil && answer.Description != "" {
		what += " (the vendor said: " + answer.Description + ")"
	}
	return what + "; start again with vault write -f " + MountPlaceholder + "device/" + name + " when the user is ready"
}

// storeDeviceTokens stores what an approved device flow got, creating the
// connection if needed; the caller holds name's lock, and ctx outlives the
// poller and the backend (WithoutCancel, with a timeout): the refresh
// token exists nowhere else.
func (m *Manager) storeDeviceTokens(ctx context.Context, s logical.Storage, name string, e *model.Entry, fl *flow, d *model.DeviceFlow, tok *tokenclient.Token, sentAt time.Time) error {
	if tok.RefreshToken == "" {
		return ErrNoRefreshToken
	}
	next, settings := connectedEntry(e, fl, tok, sentAt, d.Metadata, *d.Bound)
	log := m.logger.With("name", name, "vendor", settings.Preset.Name)
	m.onConnected(ctx, s, name, next, "device_code")
	if err := m.persist(ctx, s, name, next, log); err != nil {
		return err
	}
	m.resetHealth(name)
	log.Info("connected an account with the device flow")
	return nil
}

// CancelFlows ends the flows of name that are under way, its open
// authorizations and its device flow, because they were started for where
// the credential sent before a write that moved it: their code verifiers
// and device codes would go nowhere else anyway (the gate checks). It
// reports how many it ended.
func (m *Manager) CancelFlows(ctx context.Context, s logical.Storage, name string) (int, error) {
	unlock, err := m.lockName(ctx, "cancel flows", name)
	if err != nil {
		return 0, err
	}
	defer unlock()
	st := store.Of(s)
	n, err := st.OpenAuthorizations(ctx, name, nil, m.now(), false)
	if err != nil {
		return 0, err
	}
	if err := st.DeleteAuthorizations(ctx, name); err != nil {
		return 0, err
	}
	m.forgetAuthz(name, "")
	m.devices.stop(name)
	d, err := st.Device(ctx, name)
	if err != nil {
		return n, err
	}
	if d != nil && d.State == model.DevicePending {
		d.State, d.Detail, d.DeviceCode = model.DeviceFailed, "a write changed where the credential sends its secrets after the flow started; start it again", ""
		if err := st.PutDevice(ctx, name, d); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// CancelAppFlows is CancelFlows for every connection of app: those named
// under it, and the credentials converted into its connections (named
// under no app) that have a flow under way.
func (m *Manager) CancelAppFlows(ctx context.Context, s logical.Storage, app string) (int, error) {
	names, err := store.Of(s).FlowNames(ctx, app)
	if err != nil {
		return 0, err
	}
	converted, err := m.convertedWithFlows(ctx, s, app)
	if err != nil {
		return 0, err
	}
	names = append(names, converted...)
	total := 0
	for _, name := range names {
		n, err := m.CancelFlows(ctx, s, name)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// convertedWithFlows lists the credentials named under no app that are
// connections of app and have an authorization or a device flow stored.
func (m *Manager) convertedWithFlows(ctx context.Context, s logical.Storage, app string) ([]string, error) {
	_, authz, err := store.Of(s).AuthorizationsIn(ctx, "")
	if err != nil {
		return nil, err
	}
	devices, err := store.Of(s).DeviceNames(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, name := range append(authz, devices...) {
		if seen[name] || model.AppOf(name) != "" {
			continue
		}
		seen[name] = true
		e, err := m.peek(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if e != nil && e.Config.App == app {
			out = append(out, name)
		}
	}
	return out, nil
}

// PollDeviceNow makes one poll of name's device flow at once, as its
// poller does at the vendor's interval, for tests; true when the flow is
// over.
func (m *Manager) PollDeviceNow(ctx context.Context, s logical.Storage, name string) bool {
	return m.pollOnce(ctx, s, name)
}
