package call

import (
	"encoding"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/secinfra/secinfra/sdk-go/rpc"
)

// appendKey appends the cache key of msg for d to buf: the bytes
// cache.Key(d.FullName(), EncodeRequest(...).Fields) gives, without the JSON round
// trip (a cache hit's whole cost was that round trip). It handles what
// generated request messages hold: structs of strings, integers, booleans,
// bytes, text-marshaled enums, pointers and slices of these. ok is false for
// anything else, and for any string that encoding/json would escape, so
// that the caller falls back to cache.Key and the key never differs.
func appendKey(buf []byte, d *rpc.Descriptor, msg any) (_ []byte, ok bool) {
	v := reflect.ValueOf(msg)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Type().Elem().Kind() != reflect.Struct ||
		!plainString(d.Service) || !plainString(d.Name) {
		return buf, false
	}
	enc := encoderFor(v.Type().Elem())
	if enc == nil {
		return buf, false
	}
	buf = append(buf, `{"method":"`...)
	buf = append(buf, d.Service...)
	buf = append(buf, '/')
	buf = append(buf, d.Name...)
	buf = append(buf, `","request":`...)
	buf, ok = enc.append(buf, v.Elem())
	return append(buf, '}'), ok
}

// plainString: s is printable ASCII without '"' or '\\', which JSON
// writes as is.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func appendString(buf []byte, s string) ([]byte, bool) {
	if !plainString(s) {
		return buf, false
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"'), true
}

// simpleName: a member name of letters, digits and '_', which
// encoding/json takes from a tag as is.
func simpleName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return s != ""
}

// keyEncoder writes one type's canonical JSON.
type keyEncoder interface {
	append(buf []byte, v reflect.Value) ([]byte, bool)
}

var (
	encoders       sync.Map // reflect.Type -> keyEncoder, or unsupported{}
	marshalerType  = reflect.TypeFor[json.Marshaler]()
	textMarshaler  = reflect.TypeFor[encoding.TextMarshaler]()
	byteSliceType  = reflect.TypeFor[[]byte]()
	encoderBuildMu sync.Mutex
)

type unsupported struct{}

// encoderFor is t's encoder, nil when appendKey does not handle t.
func encoderFor(t reflect.Type) keyEncoder {
	if e, ok := encoders.Load(t); ok {
		if enc, ok := e.(keyEncoder); ok {
			return enc
		}
		return nil
	}
	encoderBuildMu.Lock()
	defer encoderBuildMu.Unlock()
	enc := buildEncoder(t, map[reflect.Type]bool{})
	if enc == nil {
		encoders.Store(t, unsupported{})
		return nil
	}
	encoders.Store(t, enc)
	return enc
}

func buildEncoder(t reflect.Type, building map[reflect.Type]bool) keyEncoder {
	if building[t] {
		return nil // recursive types: left to encoding/json
	}
	if t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType) {
		return nil
	}
	if t.Implements(textMarshaler) {
		if t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface {
			return nil
		}
		return &textEncoder{enum: reflect.Int <= t.Kind() && t.Kind() <= reflect.Int64}
	}
	if reflect.PointerTo(t).Implements(textMarshaler) {
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		return stringEncoder{}
	case reflect.Bool:
		return boolEncoder{}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intEncoder{}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return uintEncoder{}
	case reflect.Pointer:
		building[t] = true
		defer delete(building, t)
		elem := buildEncoder(t.Elem(), building)
		if elem == nil {
			return nil
		}
		return pointerEncoder{elem}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && t.Elem() == byteSliceType.Elem() {
			return bytesEncoder{}
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return nil // a named byte type: encoding/json's own rules
		}
		building[t] = true
		defer delete(building, t)
		elem := buildEncoder(t.Elem(), building)
		if elem == nil {
			return nil
		}
		return sliceEncoder{elem}
	case reflect.Struct:
		building[t] = true
		defer delete(building, t)
		return buildStructEncoder(t, building)
	case reflect.Map:
		if t.Key().Kind() == reflect.String {
			return declineEncoder{}
		}
	}
	return nil // floats, other maps, interfaces, arrays...: encoding/json's
}

type keyField struct {
	index     int
	json      string // the member's name
	name      string // "name":
	omitEmpty bool
	enc       keyEncoder
}

type structEncoder struct{ fields []keyField } // sorted by JSON name

func buildStructEncoder(t reflect.Type, building map[reflect.Type]bool) keyEncoder {
	var fields []keyField
	seen := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			return nil // embedding: encoding/json's promotion rules
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		omitEmpty := false
		for _, opt := range strings.Split(opts, ",") {
			switch opt {
			case "":
			case "omitempty":
				omitEmpty = true
			default:
				return nil // ",string", ",omitzero": encoding/json's
			}
		}
		if !simpleName(name) || seen[name] {
			return nil
		}
		seen[name] = true
		enc := buildEncoder(f.Type, building)
		if enc == nil {
			return nil
		}
		fields = append(fields, keyField{index: i, json: name, name: `"` + name + `":`, omitEmpty: omitEmpty, enc: enc})
	}
	sort.Slice(fields, func(a, b int) bool { return fields[a].json < fields[b].json })
	return structEncoder{fields}
}

func (e structEncoder) append(buf []byte, v reflect.Value) ([]byte, bool) {
	buf = append(buf, '{')
	first := true
	for i := range e.fields {
		f := &e.fields[i]
		fv := v.Field(f.index)
		if f.omitEmpty && empty(fv) {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, f.name...)
		var ok bool
		if buf, ok = f.enc.append(buf, fv); !ok {
			return buf, false
		}
	}
	return append(buf, '}'), true
}

// empty is encoding/json's omitempty test for the kinds handled here.
func empty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String, reflect.Slice, reflect.Map:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint() == 0
	case reflect.Pointer:
		return v.IsNil()
	}
	return false
}

// declineEncoder stands for a string-keyed map (a request's context, a
// google.protobuf.Struct): an omitted empty one keeps the fast path, any
// other sends the whole request to cache.Key, whose encoding/json sorts
// the members and writes numbers as on the wire.
type declineEncoder struct{}

func (declineEncoder) append(buf []byte, _ reflect.Value) ([]byte, bool) { return buf, false }

type stringEncoder struct{}

func (stringEncoder) append(buf []byte, v reflect.Value) ([]byte, bool) {
	return appendString(buf, v.String())
}

type boolEncoder struct{}

func (boolEncoder) append(buf []byte, v reflect.Value) ([]byte, bool) {
	return strconv.AppendBool(buf, v.Bool()), true
}

type intEncoder struct{}

func (intEncoder) append(buf []byte, v reflect.Value) ([]byte, bool) {
	return strconv.AppendInt(buf, v.Int(), 10), true
}

type uintEncoder struct{}

func (uintEncoder) append(buf []byte, v reflect.Value) ([]byte, bool) {
	return strconv.AppendUint(buf, v.Uint(), 10), true
}

// textEncoder writes a value type's MarshalText as a JSON string. For an
// integer type (a generated enum, whose MarshalText looks its value's name
// up) it keeps the texts of the values 0 to 63 once made.
type textEncoder struct {
	enum  bool
	texts [64]atomic.Pointer[string]
}

func (e *textEncoder) append(buf []byte, v reflect.Value) ([]byte, bool) {
	var slot *atomic.Pointer[string]
	if e.enum {
		if n := v.Int(); 0 <= n && n < int64(len(e.texts)) {
			slot = &e.texts[n]
			if text := slot.Load(); text != nil {
				return appendString(buf, *text)
			}
		}
	}
	raw, err := v.Interface().(encoding.TextMarshaler).MarshalText()
	if err != nil {
		return buf, false
	}
	text := string(raw)
	if slot != nil {
		slot.Store(&text)
	}
	return appendString(buf, text)
}

// bytesEncoder writes []byte as encoding/json does: standard base64.
type bytesEncoder struct{}

func (bytesEncoder) append(buf []byte, v reflect.Value) ([]byte, bool) {
	if v.IsNil() {
		return append(buf, "null"...), true
	}
	buf = append(buf, '"')
	buf = base64.StdEncoding.AppendEncode(buf, v.Bytes())
	return append(buf, '"'), true
}

type pointerEncoder struct{ elem keyEncoder }

func (e pointerEncoder) append(buf []byte, v reflect.Value) ([]byte, bool) {
	if v.IsNil() {
		return append(buf, "null"...), true
	}
	return e.elem.append(buf, v.Elem())
}

type sliceEncoder struct{ elem keyEncoder }

func (e sliceEncoder) append(buf []byte, v reflect.Value) ([]byte, bool) {
	if v.IsNil() {
		return append(buf, "null"...), true
	}
	buf = append(buf, '[')
	for i := 0; i < v.Len(); i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		var ok bool
		if buf, ok = e.elem.append(buf, v.Index(i)); !ok {
			return buf, false
		}
	}
	return append(buf, ']'), true
}
