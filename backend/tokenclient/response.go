package tokenclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MaxBodyBytes is the largest response body read; larger ones are refused.
// Token responses are a few kilobytes: anything near this is not one.
const MaxBodyBytes = 1 << 20

// maxExpiresIn bounds expires_in: a longer lifetime is a vendor bug or a
// misread field (milliseconds, a timestamp), and trusting it would cache a
// token long after it died.
const maxExpiresIn = 10 * 365 * 24 * time.Hour

// Bounds on the fields of a token response, far above what any vendor
// sends (an access token with many claims is a few kilobytes; a scope list
// a few hundred bytes) and far below the body limit: a hostile or broken
// token endpoint must not make each cached token (and each stored entry)
// a megabyte. A response over one is refused, saying which.
const (
	// MaxTokenBytes bounds access_token, refresh_token and id_token.
	MaxTokenBytes = 32 << 10
	// MaxScopeBytes bounds scope.
	MaxScopeBytes = 8 << 10
	// MaxTokenTypeBytes bounds token_type ("Bearer", "DPoP", "N_A").
	MaxTokenTypeBytes = 128
)

// maxRetryAfter bounds Retry-After so that a vendor's huge value cannot
// overflow a Duration or park a credential for months.
const maxRetryAfter = 24 * time.Hour

// Token is a successful token response.
type Token struct {
	// AccessToken is the issued token, never empty.
	AccessToken string
	// TokenType is normalised: any case of "bearer", or none at all,
	// becomes "Bearer"; other types are kept as sent.
	TokenType string
	// RefreshToken is "" when the response has none.
	RefreshToken string
	// Scope is the granted scope as sent (some vendors separate scopes
	// with commas); a JSON array of scopes is joined with spaces.
	Scope string
	// IDToken is the OpenID Connect id_token, if any.
	IDToken string
	// ExpiresIn is the token's lifetime, whole seconds, or 0 when the
	// response has no expires_in (the caller applies its default).
	ExpiresIn time.Duration
	// Extra holds the response fields the Request named in
	// ResponseFields; nil when it named none. It is a pointer so that
	// Token stays comparable with ==.
	Extra *ExtraFields
}

// String describes the token without its secrets, so that a Token that
// ends up in a log line leaks nothing.
func (t Token) String() string {
	s := fmt.Sprintf("tokenclient.Token{TokenType: %q, Scope: %q, ExpiresIn: %s, AccessToken: %s, RefreshToken: %s, IDToken: %s",
		t.TokenType, t.Scope, t.ExpiresIn, present(t.AccessToken), present(t.RefreshToken), present(t.IDToken))
	if t.Extra != nil && len(t.Extra.Values) > 0 {
		// Names only: an extra field may be an id_token.
		s += ", Extra: " + t.Extra.String()
	}
	return s + "}"
}

// GoString is String, so that %#v does not print the tokens either.
func (t Token) GoString() string { return t.String() }

func present(s string) string {
	if s == "" {
		return "(none)"
	}
	return redacted
}

// ParseResponse interprets one HTTP answer from a token endpoint: a
// *Token, or an *Error or *ResponseError. It is exported for fuzzing and
// for callers that make the HTTP request themselves.
//
// The secrets, the forms in which a vendor might echo them (URL- and
// JSON-escaped), and any token in the body itself are redacted from every
// error message. A relative Location is reported as a path, because the
// request URL it is relative to is not known here.
func ParseResponse(statusCode int, status string, header http.Header, body []byte, secrets ...string) (*Token, error) {
	return parseResponse(statusCode, status, header, body, nil, expandSecrets(secrets))
}

func parseResponse(statusCode int, status string, header http.Header, body []byte, base *url.URL, secrets []string) (*Token, error) {
	return parseResponseKeep(statusCode, status, header, body, base, secrets, nil)
}

// parseResponseKeep is parseResponse that also keeps the named fields of a
// successful response in Token.Extra.
func parseResponseKeep(statusCode int, status string, header http.Header, body []byte, base *url.URL, secrets []string, keep []string) (*Token, error) {
	ok := statusCode >= 200 && statusCode < 300
	if len(body) > MaxBodyBytes {
		if ok {
			return nil, &ResponseError{Reason: "response is larger than 1 MiB"}
		}
		// An oversize error page says nothing worth its cost to parse.
		return nil, newError(statusCode, status, header, base, secrets)
	}
	if statusCode >= 300 && statusCode < 400 {
		return nil, newError(statusCode, status, header, base, secrets)
	}

	fields, reason := decodeBody(header, body, secrets)
	// The vendor may echo a token it issued, in this very body, into its
	// error text or a malformed field.
	secrets = append(secrets[:len(secrets):len(secrets)], tokensIn(fields)...)
	if !ok {
		e := newError(statusCode, status, header, base, secrets)
		if fields != nil {
			e.Code, e.Description, e.ErrorURI, _ = errorFields(fields, secrets)
		}
		return nil, e
	}
	if fields == nil {
		return nil, &ResponseError{Reason: reason}
	}
	if code, desc, uri, isErr := errorFields(fields, secrets); isErr {
		e := newError(statusCode, status, header, base, secrets)
		e.Code, e.Description, e.ErrorURI = code, desc, uri
		return nil, e
	}
	tok, reason := tokenFrom(fields, secrets)
	if reason != "" {
		// A vendor that rotates has already killed the refresh token it
		// was sent: the one in this answer must not be lost with it (if
		// it is one: within its bound, without control characters).
		rt, _ := fields["refresh_token"].(string)
		if tokenReason("refresh_token", rt) != "" {
			rt = ""
		}
		return nil, &ResponseError{Reason: reason, IssuedRefreshToken: rt}
	}
	tok.Extra = extraFields(fields, keep)
	return tok, nil
}

// newError makes an *Error from the status line and headers alone.
func newError(statusCode int, status string, header http.Header, base *url.URL, secrets []string) *Error {
	// The standard status line cannot be an echo, and redacting a short
	// header value such as "0" from "400 Bad Request" would garble it.
	if status != statusLine(statusCode) {
		status = sanitize(status, maxStatusLen, secrets)
	}
	if status == "" {
		status = statusLine(statusCode)
	}
	e := &Error{
		StatusCode: statusCode,
		Status:     status,
		RetryAfter: retryAfter(header.Get("Retry-After"), time.Now()),
	}
	if statusCode >= 300 && statusCode < 400 {
		e.Location = location(header.Get("Location"), base, secrets)
	}
	return e
}

// bom is a UTF-8 byte order mark, which a few servers put before JSON.
var bom = []byte("\xef\xbb\xbf")

// decodeBody turns a JSON or form-encoded body into fields. When it
// cannot, it says why, in words that never quote the body: it may hold a
// token or an echoed secret. The Content-Type it names is sanitised.
func decodeBody(header http.Header, body []byte, secrets []string) (map[string]any, string) {
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(body), bom))
	if len(trimmed) == 0 {
		return nil, "empty body"
	}
	if trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		var fields map[string]any
		if err := dec.Decode(&fields); err != nil {
			return nil, "malformed JSON: " + describeJSONError(err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, "malformed JSON: more data after the object"
		}
		if fields == nil {
			return nil, "malformed JSON"
		}
		return fields, ""
	}
	if json.Valid(trimmed) {
		return nil, "the body is a JSON " + jsonKind(trimmed[0]) + ", not an object"
	}

	mediaType, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	switch {
	case err == nil && (mediaType == "application/x-www-form-urlencoded" || mediaType == "text/plain"):
		// GitHub and other older servers answer form-encoded.
		values, err := url.ParseQuery(string(trimmed))
		if err == nil && (values.Has("access_token") || values.Has("error")) {
			fields := make(map[string]any, len(values))
			for k := range values {
				fields[k] = values.Get(k)
			}
			return fields, ""
		}
	case header.Get("Content-Type") == "":
		mediaType = "body without a Content-Type"
	case err != nil:
		mediaType = "body with an unparsable Content-Type"
	}
	if !strings.HasPrefix(mediaType, "body ") {
		mediaType = sanitize(mediaType, maxValueLen, secrets) + " body"
	}
	return nil, fmt.Sprintf("a %d-byte %s is neither JSON nor form-encoded: check token_url",
		len(body), mediaType)
}

// describeJSONError says where JSON went wrong without quoting it: the
// decoder's messages quote the offending character.
func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of input"
	default:
		return "not a JSON object"
	}
}

func jsonKind(first byte) string {
	switch first {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// tokensIn lists the tokens a body carries, to redact them from errors.
func tokensIn(fields map[string]any) []string {
	var out []string
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if s, ok := fields[k].(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// errorFields reads an RFC 6749 5.2 error, and the shapes vendors use
// instead: a bare "message", or "error" as an object with "code" and
// "message". isErr is whether a 2xx body should count as an error: a
// non-empty "error" string or object, or "error": true (some vendors send
// "error": null or "" beside a good token).
func errorFields(fields map[string]any, secrets []string) (code, desc, uri string, isErr bool) {
	var nested map[string]any
	switch v := fields["error"].(type) {
	case string:
		code = v
		isErr = strings.TrimSpace(v) != ""
	case map[string]any:
		nested = v
		isErr = len(v) > 0
		// Only string codes: a numeric "code" is usually the HTTP status
		// again, which would read as a vendor error code of "400".
		code = firstString(v, "code", "status", "type")
	case json.Number:
		isErr = true
	case bool:
		isErr = v
	}
	desc = firstString(fields, "error_description")
	if desc == "" && nested != nil {
		desc = firstString(nested, "message", "error_description", "description")
	}
	if desc == "" {
		desc = firstString(fields, "message", "error_message", "detail")
	}
	uri = firstString(fields, "error_uri")
	return sanitize(code, maxCodeLen, secrets), sanitize(desc, maxDescriptionLen, secrets), sanitize(uri, maxLocationLen, secrets), isErr
}

// firstString returns the first of keys whose value is a non-blank string.
func firstString(fields map[string]any, keys ...string) string {
	for _, k := range keys {
		if v, ok := fields[k].(string); ok && strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// tokenFrom reads a successful token response, or says why it is not one.
func tokenFrom(fields map[string]any, secrets []string) (*Token, string) {
	tok := &Token{}
	switch v := fields["access_token"].(type) {
	case nil:
		if _, ok := fields["access_token"]; ok {
			return nil, "access_token is null"
		}
		return nil, "missing access_token"
	case string:
		if strings.TrimSpace(v) == "" {
			return nil, "access_token is empty"
		}
		tok.AccessToken = v
	default:
		return nil, "access_token is a JSON " + typeName(v) + ", not a string"
	}
	tok.RefreshToken, _ = fields["refresh_token"].(string)
	tok.IDToken, _ = fields["id_token"].(string)
	for _, t := range []struct{ name, v string }{{"access_token", tok.AccessToken}, {"refresh_token", tok.RefreshToken}, {"id_token", tok.IDToken}} {
		if reason := tokenReason(t.name, t.v); reason != "" {
			return nil, reason
		}
	}

	// token_type and scope are handed out as they are: cleaned of
	// control and invisible formatting characters, which would forge
	// lines or reorder text wherever a reader prints them.
	tt, _ := fields["token_type"].(string)
	if len(tt) > MaxTokenTypeBytes {
		return nil, fmt.Sprintf("token_type is longer than %d bytes", MaxTokenTypeBytes)
	}
	tt = cleanText(tt)
	if tt == "" || strings.EqualFold(tt, "bearer") {
		tt = "Bearer"
	}
	tok.TokenType = tt
	switch v := fields["scope"].(type) {
	case string:
		tok.Scope = v
	case []any:
		var scopes []string
		for _, s := range v {
			if s, ok := s.(string); ok && s != "" {
				scopes = append(scopes, s)
			}
		}
		tok.Scope = strings.Join(scopes, " ")
	}
	if len(tok.Scope) > MaxScopeBytes {
		return nil, fmt.Sprintf("scope is longer than %d KiB", MaxScopeBytes>>10)
	}
	tok.Scope = cleanText(tok.Scope)

	d, reason := expiresIn(fields["expires_in"], secrets)
	if reason != "" {
		return nil, reason
	}
	tok.ExpiresIn = d
	return tok, ""
}

// tokenReason says why a token field cannot be one, or "": over
// MaxTokenBytes, or holding control characters (a token goes into an
// Authorization header, where a line break would add headers of the
// vendor's choosing to its users' requests).
func tokenReason(name, v string) string {
	if len(v) > MaxTokenBytes {
		return fmt.Sprintf("%s is longer than %d KiB", name, MaxTokenBytes>>10)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c == 0x7f {
			return name + " holds control characters"
		}
	}
	return ""
}

// numeric is a decimal number as JSON writes one, with an optional sign,
// point and exponent. strconv.ParseFloat alone would also take "inf",
// "nan", hex floats and underscores.
var numeric = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)

// expiresIn reads expires_in as a JSON number (integer or float, floored
// to whole seconds) or a string holding one, as vendors send all three.
// A string that is not a number is quoted in the reason, sanitised first:
// redacted before it is cut short and quoted, so that neither can leave
// part of a secret, or an escaped form of one, in the message.
func expiresIn(v any, secrets []string) (time.Duration, string) {
	var text string
	switch v := v.(type) {
	case nil:
		return 0, ""
	case json.Number:
		text = v.String()
	case string:
		text = strings.TrimSpace(v)
		if !numeric.MatchString(text) {
			return 0, fmt.Sprintf("expires_in %q is not a number", sanitize(v, maxValueLen, secrets))
		}
	default:
		return 0, "expires_in is a JSON " + typeName(v) + ", not a number"
	}
	f, err := strconv.ParseFloat(text, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && f > 0:
		// Beyond float64: ParseFloat gives +Inf.
		return 0, fmt.Sprintf("expires_in %s is larger than 10 years", sanitize(text, maxValueLen, secrets))
	case errors.Is(err, strconv.ErrRange) && f < 0:
		return 0, fmt.Sprintf("expires_in %s is not positive", sanitize(text, maxValueLen, secrets))
	case err != nil, math.IsNaN(f), math.IsInf(f, 0):
		return 0, fmt.Sprintf("expires_in %q is not a number", sanitize(text, maxValueLen, secrets))
	}
	// A number is vendor text too: a vendor could echo a numeric secret.
	shown := Redact(formatSeconds(f), secrets...)
	switch secs := math.Floor(f); {
	case f <= 0:
		return 0, "expires_in " + shown + " is not positive"
	case secs < 1:
		return 0, "expires_in " + shown + " is less than one second"
	case secs > maxExpiresIn.Seconds():
		return 0, "expires_in " + shown + " is larger than 10 years"
	default:
		return time.Duration(secs) * time.Second, ""
	}
}

// formatSeconds shows whole numbers in full (315360001, not 3.15360001e+08)
// and others as short as they go (1e+20, 0.5).
func formatSeconds(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func typeName(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case string:
		return "string"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// retryAfter reads a Retry-After header: delta-seconds or an HTTP-date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d <= 0 {
			return 0
		}
		return min(d, maxRetryAfter)
	}
	return 0
}

// location shows a redirect target as scheme://host/path, resolved
// against the request URL when it is relative. It redacts the raw value
// too: escaping the path could otherwise turn an echoed secret into a form
// the redaction does not know.
func location(v string, base *url.URL, secrets []string) string {
	v = strings.TrimSpace(Redact(v, secrets...))
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil {
		return "(an unparsable URL)"
	}
	if base != nil {
		u = base.ResolveReference(u)
	}
	return sanitize(displayEndpoint(u), maxLocationLen, secrets)
}
