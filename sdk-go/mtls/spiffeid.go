package mtls

import (
	"errors"
	"fmt"
	"strings"
)

// spiffeScheme starts every SPIFFE ID.
const spiffeScheme = "spiffe://"

// parseID checks id against the SPIFFE ID syntax (SPIFFE-ID spec, section
// 2) and splits it into its trust domain and path ("" or "/seg/..."). The
// syntax is checked strictly, not merely parsed as a URL, so that an ID an
// authorizer compares is the one the certificate names: no percent
// encoding, query, fragment, port or user info, no empty, "." or ".."
// segment, no trailing slash.
func parseID(id string) (trustDomain, path string, err error) {
	rest, ok := strings.CutPrefix(id, spiffeScheme)
	if !ok {
		return "", "", fmt.Errorf("%q is not a SPIFFE ID: it does not start with %s", id, spiffeScheme)
	}
	trustDomain, path = rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		trustDomain, path = rest[:i], rest[i:]
	}
	if err := checkTrustDomain(trustDomain); err != nil {
		return "", "", fmt.Errorf("%q is not a SPIFFE ID: %w", id, err)
	}
	if path != "" {
		if err := checkPath(path); err != nil {
			return "", "", fmt.Errorf("%q is not a SPIFFE ID: %w", id, err)
		}
	}
	return trustDomain, path, nil
}

// checkTrustDomain allows lowercase letters, digits, '.', '-' and '_'.
func checkTrustDomain(td string) error {
	if td == "" {
		return errors.New("the trust domain is empty")
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("the trust domain %q holds %q (only lowercase letters, digits, '.', '-' and '_')", td, c)
		}
	}
	return nil
}

// checkPath allows "/"-separated segments of letters, digits, '.', '-' and
// '_', none of them empty, "." or "..".
func checkPath(path string) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("the path %q does not start with '/'", path)
	}
	for _, seg := range strings.Split(path[1:], "/") {
		switch seg {
		case "":
			return fmt.Errorf("the path %q has an empty segment or a trailing '/'", path)
		case ".", "..":
			return fmt.Errorf("the path %q has a %q segment", path, seg)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
				return fmt.Errorf("the path %q holds %q (only letters, digits, '.', '-' and '_')", path, c)
			}
		}
	}
	return nil
}
