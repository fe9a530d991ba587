package call

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// Request is a request message encoded as its descriptor says (spec 2.2,
// 2.3): the target URL, the JSON body, and the message's JSON fields, which
// also make the cache key and name the resource a write invalidates.
type Request struct {
	// Fields is the message as a JSON object (numbers as json.Number).
	Fields map[string]any
	// URL is base + the expanded path template + the query.
	URL string
	// Body is the JSON body; nil for GET and DELETE, which carry none.
	Body []byte
}

// EncodeRequest encodes msg, a generated request struct, for d. Path
// fields fill the template (percent-encoded; a {name=**} field keeps its
// slashes); GET and DELETE send the query fields, in proto order, repeated
// for a list; other verbs send every field but the path ones as the body.
func EncodeRequest(base string, d *rpc.Descriptor, msg any) (*Request, error) {
	fields, err := toJSONObject(msg)
	if err != nil {
		return nil, fmt.Errorf("secinfra: transport: %s: cannot encode the request: %w", d.FullName(), err)
	}
	path := d.Path
	for _, name := range d.PathParams {
		value := fieldText(fields[name])
		multi := "{" + name + "=**}"
		if strings.Contains(path, multi) {
			path = strings.Replace(path, multi, escapePath(value, true), 1)
		} else {
			path = strings.Replace(path, "{"+name+"}", escapePath(value, false), 1)
		}
	}
	r := &Request{Fields: fields, URL: base + path}
	if d.HTTPMethod == http.MethodGet || d.HTTPMethod == http.MethodDelete {
		var q []string
		for _, name := range d.QueryParams {
			v, ok := fields[name]
			if !ok || v == nil {
				continue
			}
			items, isList := v.([]any)
			if !isList {
				items = []any{v}
			}
			for _, item := range items {
				q = append(q, url.QueryEscape(name)+"="+url.QueryEscape(fieldText(item)))
			}
		}
		if len(q) > 0 {
			r.URL += "?" + strings.Join(q, "&")
		}
		return r, nil
	}
	body := map[string]any{}
	for k, v := range fields {
		body[k] = v
	}
	for _, name := range d.PathParams {
		delete(body, name)
	}
	if r.Body, err = json.Marshal(body); err != nil {
		return nil, fmt.Errorf("secinfra: transport: %s: cannot encode the body: %w", d.FullName(), err)
	}
	return r, nil
}

// escapePath percent-encodes every octet outside RFC 3986's unreserved set
// (and '/' unless keepSlash), with upper-case hex.
func escapePath(s string, keepSlash bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case 'A' <= ch && ch <= 'Z', 'a' <= ch && ch <= 'z', '0' <= ch && ch <= '9',
			ch == '-', ch == '.', ch == '_', ch == '~', keepSlash && ch == '/':
			b.WriteByte(ch)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[ch>>4])
			b.WriteByte(hex[ch&15])
		}
	}
	return b.String()
}

// fieldText is a JSON value as text: strings as is, numbers in decimal,
// booleans true/false.
func fieldText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	data, _ := json.Marshal(v)
	return string(data)
}

// toJSONObject encodes a request message to its JSON object form.
func toJSONObject(msg any) (map[string]any, error) {
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	out := map[string]any{}
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}
