package standin

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxBody caps token request bodies; real token requests are a few hundred
// bytes.
const maxBody = 1 << 20

// Body formats, as Expect and SetAcceptBody spell them.
const (
	formatForm = "form"
	formatJSON = "json"
)

const (
	contentTypeForm = "application/x-www-form-urlencoded"
	contentTypeJSON = "application/json"
)

// oauthParams are the RFC 6749 parameters a token request carries. In the
// query string they are a client bug (they leak into access logs), so
// vendors refuse them there unless they document otherwise.
var oauthParams = []string{
	"grant_type", "client_id", "client_secret", "refresh_token", "code",
	"redirect_uri", "code_verifier", "scope", "username", "password", "assertion",
}

// tokenRequest is a token request, parsed once.
type tokenRequest struct {
	r        *http.Request
	query    url.Values
	queryErr error
	// body holds the body parameters; a repeated one keeps every value so
	// repeats can be refused.
	body url.Values
	// format is "form" or "json" by Content-Type, "" for an empty body
	// without one, or the media type itself when it is neither.
	format  string
	bodyErr *oauthError
}

// oauthError is a refused request, written as the vendor writes it.
type oauthError struct {
	status int
	code   string // RFC 6749 section 5.2 error code; "" for raw bodies
	desc   string
	header http.Header
	raw    []byte // body as-is instead of an RFC 6749 error
	rawCT  string
}

func (e *oauthError) Error() string { return e.code + ": " + e.desc }

// statKey is the key the failure counts under in Stats.Failures.
func (e *oauthError) statKey() string {
	if e.code != "" {
		return e.code
	}
	return fmt.Sprintf("http_%d", e.status)
}

func errRequest(format string, args ...any) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: fmt.Sprintf(format, args...)}
}

func errMissing(param string) *oauthError {
	return errRequest("missing required parameter: %s", param)
}

// errClient is a failed client authentication. RFC 6749 section 5.2 wants a
// WWW-Authenticate challenge with the 401 when the client tried (or was
// expected to try) HTTP Basic.
func errClient(challenge bool, realm, desc string) *oauthError {
	e := &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: desc}
	if challenge {
		e.header = http.Header{"Www-Authenticate": {fmt.Sprintf("Basic realm=%q", realm)}}
	}
	return e
}

func errGrant(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", desc: desc}
}

func errUnsupportedGrant(gt string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type",
		desc: fmt.Sprintf("grant_type %q is not supported", gt)}
}

func errScope(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: desc}
}

// grantResult is a successful token response.
type grantResult struct {
	grantType string
	fields    map[string]any
}

// parseTokenRequest reads and parses r's query and body. Errors are kept for
// the vendor to report in its own order.
func parseTokenRequest(w http.ResponseWriter, r *http.Request) *tokenRequest {
	req := &tokenRequest{r: r, body: url.Values{}}
	req.query, req.queryErr = url.ParseQuery(r.URL.RawQuery)
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		req.bodyErr = errRequest("reading the request body: %v", err)
		return req
	}
	ct := r.Header.Get("Content-Type")
	mt := ""
	if ct != "" {
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			req.format = ct
			req.bodyErr = errRequest("malformed Content-Type %q", ct)
			return req
		}
	}
	switch mt {
	case contentTypeForm:
		req.format = formatForm
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			req.bodyErr = errRequest("malformed application/x-www-form-urlencoded body: %v", err)
			return req
		}
		req.body = vals
	case contentTypeJSON:
		req.format = formatJSON
		vals, err := parseJSONParams(raw)
		if err != nil {
			req.bodyErr = errRequest("malformed JSON body: %v", err)
			return req
		}
		req.body = vals
	case "":
		if len(raw) > 0 {
			req.bodyErr = errRequest("a request body needs a Content-Type")
		}
	default:
		req.format = mt
		if len(raw) > 0 {
			req.bodyErr = errRequest("unsupported Content-Type %q", mt)
		}
	}
	return req
}

// parseJSONParams parses a JSON object of string values, keeping repeated
// keys (encoding/json would silently keep the last).
func parseJSONParams(raw []byte) (url.Values, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("the body must be a JSON object")
	}
	vals := url.Values{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, err
		}
		var s string
		if err := json.Unmarshal(val, &s); err != nil {
			return nil, fmt.Errorf("parameter %q must be a string", key)
		}
		vals.Add(key, s)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	return vals, nil
}

// checkBody refuses a body whose format is not one of allowed, or that did
// not parse, or that repeats a parameter.
func (req *tokenRequest) checkBody(allowed ...string) *oauthError {
	ok := false
	for _, f := range allowed {
		ok = ok || req.format == f
	}
	if !ok {
		names := make([]string, len(allowed))
		for i, f := range allowed {
			names[i] = map[string]string{formatForm: contentTypeForm, formatJSON: contentTypeJSON}[f]
		}
		got := req.r.Header.Get("Content-Type")
		if got == "" {
			got = "none"
		}
		return errRequest("Content-Type must be %s (got %s)", strings.Join(names, " or "), got)
	}
	if req.bodyErr != nil {
		return req.bodyErr
	}
	return req.checkRepeats()
}

// checkAnyBody refuses a body that did not parse or repeats a parameter,
// whatever its format.
func (req *tokenRequest) checkAnyBody() *oauthError {
	if req.bodyErr != nil {
		return req.bodyErr
	}
	return req.checkRepeats()
}

// checkRepeats enforces RFC 6749 section 3.2: parameters must not be
// included more than once.
func (req *tokenRequest) checkRepeats() *oauthError {
	for _, vals := range []url.Values{req.query, req.body} {
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if len(vals[k]) > 1 {
				return errRequest("parameter %s must not be repeated", k)
			}
		}
	}
	return nil
}

// checkQuery refuses a malformed query string and OAuth parameters in it,
// except those named in allowed.
func (req *tokenRequest) checkQuery(allowed ...string) *oauthError {
	if req.queryErr != nil {
		return errRequest("malformed query string: %v", req.queryErr)
	}
	for _, p := range oauthParams {
		if _, in := req.query[p]; !in {
			continue
		}
		isAllowed := false
		for _, a := range allowed {
			isAllowed = isAllowed || a == p
		}
		if !isAllowed {
			return errRequest("parameter %s must be sent in the request body, not the query string", p)
		}
	}
	return nil
}

// param returns a body parameter.
func (req *tokenRequest) param(name string) string { return req.body.Get(name) }

// has reports whether the body carries the parameter at all.
func (req *tokenRequest) has(name string) bool {
	_, ok := req.body[name]
	return ok
}

// grantType returns grant_type from the body, or from the query string when
// inQuery, refusing it in the other place.
func (req *tokenRequest) grantType(inQuery bool) (string, *oauthError) {
	if inQuery {
		if req.has("grant_type") {
			return "", errRequest("grant_type must be in the query string, not the request body")
		}
		if gt := req.query.Get("grant_type"); gt != "" {
			return gt, nil
		}
		return "", errMissing("grant_type")
	}
	if _, in := req.query["grant_type"]; in {
		return "", errRequest("grant_type must be in the request body, not the query string")
	}
	if gt := req.param("grant_type"); gt != "" {
		return gt, nil
	}
	return "", errMissing("grant_type")
}

// basicCreds returns the credentials in an HTTP Basic Authorization header.
// With formDecode the id and secret are form-decoded after splitting, as RFC
// 6749 section 2.3.1 says; otherwise they are taken as they are.
func basicCreds(r *http.Request, formDecode bool, realm string) (id, secret string, present bool, e *oauthError) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return "", "", false, nil
	}
	if len(hs) > 1 {
		return "", "", true, errRequest("more than one Authorization header")
	}
	scheme, payload, _ := strings.Cut(hs[0], " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", true, errClient(true, realm, "client authentication failed: the Authorization header must use the Basic scheme")
	}
	dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return "", "", true, errClient(true, realm, "client authentication failed: malformed HTTP Basic credentials")
	}
	id, secret, ok := strings.Cut(string(dec), ":")
	if !ok {
		return "", "", true, errClient(true, realm, "client authentication failed: malformed HTTP Basic credentials")
	}
	if formDecode {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return "", "", true, errClient(true, realm, "client authentication failed: HTTP Basic credentials are not form-encoded (RFC 6749 section 2.3.1)")
		}
	}
	return id, secret, true, nil
}

// lookupLocked finds a client and checks the secret against each it
// accepts, in constant time. An unknown client and a wrong secret get the
// same answer.
func (v *Vendor) lookupLocked(id, secret string) (*clientRecord, bool) {
	c, ok := v.clients[id]
	if !ok {
		return nil, false
	}
	// Every secret is compared, so the time taken does not say which one
	// matched.
	match := 0
	for _, s := range c.secrets {
		match |= subtle.ConstantTimeCompare([]byte(s), []byte(secret))
	}
	if match != 1 {
		return nil, false
	}
	return c, true
}

// authBodyLocked authenticates a client that must send client_id and
// client_secret in the request body.
func (v *Vendor) authBodyLocked(req *tokenRequest) (*clientRecord, *oauthError) {
	if req.r.Header.Get("Authorization") != "" {
		if req.has("client_secret") {
			return nil, errRequest("the client used more than one authentication method (Authorization header and client_secret)")
		}
		return nil, errClient(false, v.name, "client credentials must be sent in the request body (client_id and client_secret), not in the Authorization header")
	}
	id, secret := req.param("client_id"), req.param("client_secret")
	if id == "" || secret == "" {
		return nil, errClient(false, v.name, "client authentication failed: client_id and client_secret are required in the request body")
	}
	c, ok := v.lookupLocked(id, secret)
	if !ok {
		return nil, errClient(false, v.name, "client authentication failed: unknown client or wrong client secret")
	}
	return c, nil
}

// bodyClientGrantLocked makes the checks OfficeRnD, Eshopbox and Penbox
// share, in the order they answer them: a body in one of formats, nothing
// in the query, the client authenticated by the body, grant_type in the
// body. It returns the client and the grant type.
func (v *Vendor) bodyClientGrantLocked(req *tokenRequest, formats ...string) (*clientRecord, string, *oauthError) {
	if e := req.checkBody(formats...); e != nil {
		return nil, "", e
	}
	if e := req.checkQuery(); e != nil {
		return nil, "", e
	}
	c, e := v.authBodyLocked(req)
	if e != nil {
		return nil, "", e
	}
	gt, e := req.grantType(false)
	if e != nil {
		return nil, "", e
	}
	return c, gt, nil
}

// authBasicLocked authenticates a client that must use HTTP Basic. A
// client_id in the body is tolerated when it names the same client.
func (v *Vendor) authBasicLocked(req *tokenRequest, formDecode bool) (*clientRecord, *oauthError) {
	id, secret, present, e := basicCreds(req.r, formDecode, v.name)
	if e != nil {
		return nil, e
	}
	if req.has("client_secret") {
		if present {
			return nil, errRequest("the client used more than one authentication method (Authorization header and client_secret)")
		}
		return nil, errClient(true, v.name, "client credentials must be sent with HTTP Basic authentication, not in the request body")
	}
	if !present {
		return nil, errClient(true, v.name, "client authentication required: send HTTP Basic credentials")
	}
	if req.has("client_id") && req.param("client_id") != id {
		return nil, errClient(true, v.name, "client authentication failed: client_id in the body does not match the Authorization header")
	}
	c, ok := v.lookupLocked(id, secret)
	if !ok {
		return nil, errClient(true, v.name, "client authentication failed: unknown client or wrong client secret")
	}
	return c, nil
}

// grantScopes checks requested (space-separated) against what the client may
// have, and returns the granted scope string.
func grantScopes(c *clientRecord, requested string) (string, *oauthError) {
	var granted []string
	seen := map[string]bool{}
	for _, s := range strings.Fields(requested) {
		if seen[s] {
			continue
		}
		seen[s] = true
		if c.Scopes != nil && !contains(c.Scopes, s) {
			return "", errScope(fmt.Sprintf("the requested scope %q is not allowed: the application lacks permission for it", s))
		}
		granted = append(granted, s)
	}
	return strings.Join(granted, " "), nil
}

// subsetScopes checks that requested (space-separated) asks for no more than
// original, as RFC 6749 section 6 requires of a refresh.
func subsetScopes(original, requested string) (string, *oauthError) {
	if strings.TrimSpace(requested) == "" {
		return original, nil
	}
	have := strings.Fields(original)
	for _, s := range strings.Fields(requested) {
		if !contains(have, s) {
			return "", errScope(fmt.Sprintf("the requested scope %q exceeds the scope originally granted", s))
		}
	}
	return strings.Join(strings.Fields(requested), " "), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// seconds is a lifetime in whole seconds, as expires_in carries it.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// serve routes a request within the vendor's prefix.
func (v *Vendor) serve(w http.ResponseWriter, r *http.Request, rest string) {
	if rest == v.tokenPath {
		v.serveToken(w, r)
		return
	}
	if h, ok := v.routes[rest]; ok {
		h(w, r)
		return
	}
	http.NotFound(w, r)
}

// serveToken runs a token request through the knobs (delay, rate limit,
// injected failure) and then the vendor's own checks.
func (v *Vendor) serveToken(w http.ResponseWriter, r *http.Request) {
	req := parseTokenRequest(w, r)
	rec := Recorded{
		Method:   r.Method,
		Path:     r.URL.Path,
		Query:    req.query,
		Header:   r.Header.Clone(),
		Form:     map[string]string{},
		BodyJSON: req.format == formatJSON,
		At:       v.srv.now(),
	}
	if rec.Query == nil {
		rec.Query = url.Values{}
	}
	for k, vals := range req.body {
		rec.Form[k] = vals[0]
	}

	v.mu.Lock()
	v.stats.Requests++
	v.recorded = append(v.recorded, rec)
	if n := len(v.recorded); n > maxRecorded {
		v.recorded = append([]Recorded(nil), v.recorded[n-maxRecorded:]...)
	}
	delay := v.behavior.Delay
	v.mu.Unlock()

	if r.Method != http.MethodPost {
		v.finish(w, nil, &oauthError{status: http.StatusMethodNotAllowed,
			header: http.Header{"Allow": {http.MethodPost}},
			raw:    []byte("method not allowed: the token endpoint takes POST\n"), rawCT: "text/plain; charset=utf-8"})
		return
	}

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			v.mu.Lock()
			v.stats.Failures["client_gone"]++
			v.mu.Unlock()
			return
		case <-v.srv.closed:
			t.Stop()
			v.finish(w, nil, &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
				desc: "the stand-in is shutting down"})
			return
		}
	}

	v.mu.Lock()
	res, e := v.admitLocked()
	if e == nil {
		res, e = v.handleToken(v, req)
	}
	lose := v.behavior.LoseNext > 0
	if lose {
		v.behavior.LoseNext--
		v.stats.Lost++
	}
	late := v.behavior.LateAnswer
	v.mu.Unlock()
	if lose {
		loseAnswer(w)
		return
	}
	if late > 0 {
		select {
		case <-time.After(late):
		case <-r.Context().Done():
			return
		}
	}
	v.finish(w, res, e)
}

// loseAnswer closes the connection without answering, as a network that
// drops the response would.
func loseAnswer(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("standin: LoseNext needs a connection that can be hijacked (HTTP/1.1)")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// admitLocked applies the rate limit and injected failures.
func (v *Vendor) admitLocked() (*grantResult, *oauthError) {
	b := &v.behavior
	if b.RateLimit > 0 {
		now := v.srv.now()
		window := b.RateWindow
		if window <= 0 {
			window = time.Second
		}
		kept := v.admitted[:0]
		for _, t := range v.admitted {
			if now.Sub(t) < window {
				kept = append(kept, t)
			}
		}
		v.admitted = kept
		if len(v.admitted) >= b.RateLimit {
			wait := v.admitted[0].Add(window).Sub(now)
			secs := int64(math.Ceil(wait.Seconds()))
			if secs < 1 {
				secs = 1
			}
			return nil, &oauthError{status: http.StatusTooManyRequests, code: "rate_limited",
				desc:   fmt.Sprintf("too many token requests: at most %d per %s; retry after %d seconds", b.RateLimit, window, secs),
				header: http.Header{"Retry-After": {strconv.FormatInt(secs, 10)}}}
		}
		v.admitted = append(v.admitted, now)
	}
	if b.FailNext > 0 {
		b.FailNext--
		status := b.FailStatus
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		body := b.FailBody
		if body == "" {
			body = `{"error":"temporarily_unavailable","error_description":"stand-in: injected failure"}`
		}
		e := &oauthError{status: status, header: b.FailHeader.Clone(), raw: []byte(body), rawCT: "text/plain; charset=utf-8"}
		var parsed struct {
			Error string `json:"error"`
		}
		if trimmed := strings.TrimSpace(body); strings.HasPrefix(trimmed, "{") {
			e.rawCT = "application/json"
			if json.Unmarshal([]byte(trimmed), &parsed) == nil {
				e.code = parsed.Error
			}
		}
		return nil, e
	}
	return nil, nil
}

// finish writes the response and counts it.
func (v *Vendor) finish(w http.ResponseWriter, res *grantResult, e *oauthError) {
	v.mu.Lock()
	asForm := v.name == VendorGeneric && v.behavior.ResponseFormat == formatForm
	if e != nil {
		v.stats.Failures[e.statKey()]++
	} else {
		v.stats.Grants++
		v.stats.ByGrantType[res.grantType]++
	}
	v.mu.Unlock()

	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if e != nil {
		for k, vals := range e.header {
			h[k] = append([]string(nil), vals...)
		}
		if e.raw != nil {
			h.Set("Content-Type", e.rawCT)
			w.WriteHeader(e.status)
			_, _ = w.Write(e.raw)
			return
		}
		fields := map[string]any{"error": e.code, "error_description": e.desc}
		writeFields(w, e.status, fields, asForm)
		return
	}
	writeFields(w, http.StatusOK, res.fields, asForm)
}

// writeFields writes a response object as JSON, or form-encoded when asForm
// (flat values only).
func writeFields(w http.ResponseWriter, status int, fields map[string]any, asForm bool) {
	var body []byte
	if asForm {
		vals := url.Values{}
		for k, x := range fields {
			vals.Set(k, fmt.Sprint(x))
		}
		body = []byte(vals.Encode())
		w.Header().Set("Content-Type", contentTypeForm)
	} else {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(fields) // only strings, numbers and maps of them
		body = buf.Bytes()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
