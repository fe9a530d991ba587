package call

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/secinfra/secinfra/sdk-go/internal/retry"
	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// RequestIDHeader names the server's id of an answer (spec 11.5).
const RequestIDHeader = "Request-Id"

// Answer is the server's answer to a call: the answering attempt's status,
// headers and body, and the attempts the call made.
type Answer struct {
	Status   int
	Header   http.Header
	Body     []byte
	Attempts int
	// Endpoint is the endpoint URL the answering attempt went to (spec 12.8).
	Endpoint string
}

// DecodeResult decodes a successful answer's body into resp, a generated
// response struct; an empty body is the empty message. A body that is not
// the message's JSON is a transport error: no usable answer.
func DecodeResult(name string, a *Answer, resp any) error {
	body := a.Body
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, resp); err != nil {
		return &rpc.Error{Kind: rpc.KindTransport, Code: rpc.CodeUnavailable, Status: a.Status,
			RequestID: a.Header.Get(RequestIDHeader), Attempts: a.Attempts, Cause: err,
			Message: fmt.Sprintf("secinfra: transport: %s: the server's answer is not valid JSON of the response message: %v", name, err)}
	}
	return nil
}

// DecodeError is the typed error an answer that is not a success describes
// (spec 11): the envelope's code (else the status's), family, message (kept
// as received, 11.6.1), request id (the header's, else the envelope's) and
// details; whether the status is retryable for idem; and a valid
// Retry-After, read at now (3.6.7). A status below 400 other than a success
// is unexpected: the API answers 2xx, or 304 to a conditional request.
func DecodeError(name string, a *Answer, idem rpc.Idempotency, now time.Time) *rpc.Error {
	if a.Status < 400 {
		return &rpc.Error{Kind: rpc.KindInternal, Code: rpc.CodeInternal, Status: a.Status, Attempts: a.Attempts,
			RequestID: a.Header.Get(RequestIDHeader),
			Message:   fmt.Sprintf("secinfra: transport: %s: unexpected HTTP %d (the API answers 2xx, or 304 to a conditional request)", name, a.Status)}
	}
	env := parseEnvelope(a.Body)
	code := env.Code
	if code == "" {
		code = rpc.CodeForStatus(a.Status)
	}
	msg := env.Message
	if msg == "" {
		msg = fmt.Sprintf("secinfra: transport: %s: HTTP %d", name, a.Status)
	}
	reqID := a.Header.Get(RequestIDHeader)
	if reqID == "" {
		reqID = env.RequestID
	}
	retryable, _, _ := retry.StatusRetryable(a.Status, a.Header, idem)
	e := &rpc.Error{Kind: rpc.KindForCode(code), Code: code, Message: msg, Status: a.Status, RequestID: reqID,
		Retryable: retryable, Attempts: a.Attempts, Details: env.Details}
	if raw := a.Header.Get(retry.RetryAfterHeader); raw != "" {
		e.RetryAfter, e.HasRetryAfter = retry.ParseRetryAfter(raw, now)
	}
	return e
}

// envelope is the error object of every non-2xx answer.
type envelope struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	RequestID string         `json:"request_id"`
	Details   map[string]any `json:"details"`
}

// parseEnvelope reads {"error": {...}}; the zero envelope when there is none.
func parseEnvelope(body []byte) envelope {
	var doc struct {
		Error json.RawMessage `json:"error"`
	}
	var env envelope
	if json.Unmarshal(body, &doc) != nil || len(doc.Error) == 0 {
		return envelope{}
	}
	if json.Unmarshal(doc.Error, &env) != nil {
		return envelope{}
	}
	return env
}
