package server

import (
	"net/http"
	"strings"
)

// The identity headers the proxy owns: it sets them on every request it
// forwards, from the verified client certificate and the matched route,
// and removes any header a client sent under these names (docs/proxy/headers.md).
const (
	// HeaderCallerID is the caller's SPIFFE ID.
	HeaderCallerID = "Secinfra-Caller-Id"
	// HeaderCallerKind is "user" for an ID under the trust domain's /user/
	// path, else "workload".
	HeaderCallerKind = "Secinfra-Caller-Kind"
	// HeaderCallerSerial is the caller's certificate serial (lowercase hex).
	HeaderCallerSerial = "Secinfra-Caller-Serial"
	// HeaderRoute is the name of the route that matched.
	HeaderRoute = "Secinfra-Route"
	// HeaderRequestID is the proxy's id for the request, also on its answer.
	HeaderRequestID = "Request-Id"
)

// ownedPrefix starts every caller header, those to come included.
const ownedPrefix = "secinfra-caller-"

// owned reports whether a header named name is one the proxy owns. Names
// are compared with '_' read as '-', case-insensitively: CGI, WSGI, Rack
// and some proxies fold "Secinfra_Caller_Id" into the same variable as
// "Secinfra-Caller-Id", so a client must not be able to send either.
func owned(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	return strings.HasPrefix(n, ownedPrefix) || n == "secinfra-route" || n == "request-id"
}

// stripOwned removes every owned header from h.
func stripOwned(h http.Header) {
	for name := range h {
		if owned(name) {
			delete(h, name)
		}
	}
}

// userPath is where people's SPIFFE IDs live in a trust domain
// (certificates from `secinfra login`).
const userPath = "/user/"

// callerKind is "user" or "workload" for a verified SPIFFE ID of trustDomain.
func callerKind(id, trustDomain string) string {
	if strings.HasPrefix(id, "spiffe://"+trustDomain+userPath) {
		return "user"
	}
	return "workload"
}
