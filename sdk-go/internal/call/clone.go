package call

import (
	"reflect"
	"sync"
	"time"
)

// A cache entry keeps its answer decoded as well as encoded, so that a hit
// copies a value instead of decoding JSON. The copy is deep: what a caller
// gets shares no memory with the entry or with another caller's answer, as
// a decoded answer shares none, so a caller may change (or zero) its value.
// Types the copier does not handle are decoded from the body as before.

// copier deep-copies one type's values.
type copier interface {
	// copy makes dst, settable, a deep copy of src.
	copy(dst, src reflect.Value)
}

var (
	copiers        sync.Map // reflect.Type -> copier, or unsupported{}
	copierBuildMu  sync.Mutex
	timeType       = reflect.TypeFor[time.Time]()
	byteSliceKinds = reflect.TypeFor[[]byte]()
)

// copierFor is t's copier, nil when it cannot copy t.
func copierFor(t reflect.Type) copier {
	if c, ok := copiers.Load(t); ok {
		if cp, ok := c.(copier); ok {
			return cp
		}
		return nil
	}
	copierBuildMu.Lock()
	defer copierBuildMu.Unlock()
	cp := buildCopier(t, map[reflect.Type]bool{})
	if cp == nil {
		copiers.Store(t, unsupported{})
		return nil
	}
	copiers.Store(t, cp)
	return cp
}

// decoded is an answer's value as a cache entry keeps it: a pointer to
// the decoded message and the copier of its type.
type decoded struct {
	ptr reflect.Value
	cp  copier
}

// decodedValue is a successful answer's body decoded into a new value of
// resp's type (a pointer), for the cache entry to keep; nil when the copier
// cannot copy that type or the body does not decode.
func decodedValue(name string, resp any, a *Answer) any {
	t := reflect.TypeOf(resp)
	if t == nil || t.Kind() != reflect.Pointer {
		return nil
	}
	cp := copierFor(t.Elem())
	if cp == nil {
		return nil
	}
	v := reflect.New(t.Elem())
	if DecodeResult(name, a, v.Interface()) != nil {
		return nil
	}
	return &decoded{ptr: v, cp: cp}
}

// copyInto makes *resp a deep copy of the value decodedValue kept, when
// resp points to the same type and *resp is zero (a decode into a non-zero
// value would merge, which a copy would not); false otherwise: the caller
// decodes the body.
func copyInto(resp, value any) bool {
	dv, ok := value.(*decoded)
	if !ok {
		return false
	}
	dst := reflect.ValueOf(resp)
	if dst.Type() != dv.ptr.Type() || dst.IsNil() {
		return false
	}
	elem := dst.Elem()
	if !elem.IsZero() {
		return false
	}
	dv.cp.copy(elem, dv.ptr.Elem())
	return true
}

func buildCopier(t reflect.Type, building map[reflect.Type]bool) copier {
	if t == timeType {
		return valueCopier{} // immutable; its *Location is shared by every copy of it
	}
	if building[t] {
		return nil
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return valueCopier{}
	case reflect.Pointer:
		building[t] = true
		defer delete(building, t)
		elem := buildCopier(t.Elem(), building)
		if elem == nil {
			return nil
		}
		return pointerCopier{elem: elem, t: t.Elem()}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && t.Elem() == byteSliceKinds.Elem() {
			return bytesCopier{}
		}
		building[t] = true
		defer delete(building, t)
		elem := buildCopier(t.Elem(), building)
		if elem == nil {
			return nil
		}
		return sliceCopier{elem}
	case reflect.Map:
		building[t] = true
		defer delete(building, t)
		key, elem := buildCopier(t.Key(), building), buildCopier(t.Elem(), building)
		if _, plain := key.(valueCopier); !plain || elem == nil {
			return nil
		}
		return mapCopier{elem: elem}
	case reflect.Struct:
		building[t] = true
		defer delete(building, t)
		var deep []fieldCopier
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				return nil // reflect cannot set it
			}
			cp := buildCopier(f.Type, building)
			if cp == nil {
				return nil
			}
			if _, plain := cp.(valueCopier); !plain {
				deep = append(deep, fieldCopier{index: i, cp: cp})
			}
		}
		return structCopier{deep}
	}
	return nil // interfaces, arrays, channels, functions
}

// valueCopier copies a value that holds no reference to mutable memory.
type valueCopier struct{}

func (valueCopier) copy(dst, src reflect.Value) { dst.Set(src) }

type fieldCopier struct {
	index int
	cp    copier
}

// structCopier copies the struct, then gives each field that refers to
// memory a copy of its own.
type structCopier struct{ deep []fieldCopier }

func (c structCopier) copy(dst, src reflect.Value) {
	dst.Set(src)
	for _, f := range c.deep {
		f.cp.copy(dst.Field(f.index), src.Field(f.index))
	}
}

type pointerCopier struct {
	elem copier
	t    reflect.Type
}

func (c pointerCopier) copy(dst, src reflect.Value) {
	if src.IsNil() {
		dst.SetZero()
		return
	}
	p := reflect.New(c.t)
	c.elem.copy(p.Elem(), src.Elem())
	dst.Set(p)
}

// bytesCopier copies []byte, keeping nil apart from empty.
type bytesCopier struct{}

func (bytesCopier) copy(dst, src reflect.Value) {
	if src.IsNil() {
		dst.SetZero()
		return
	}
	b := src.Bytes()
	out := make([]byte, len(b)) // non-nil when empty, as src
	copy(out, b)
	dst.SetBytes(out)
}

type sliceCopier struct{ elem copier }

func (c sliceCopier) copy(dst, src reflect.Value) {
	if src.IsNil() {
		dst.SetZero()
		return
	}
	out := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
	for i := 0; i < src.Len(); i++ {
		c.elem.copy(out.Index(i), src.Index(i))
	}
	dst.Set(out)
}

type mapCopier struct{ elem copier }

func (c mapCopier) copy(dst, src reflect.Value) {
	if src.IsNil() {
		dst.SetZero()
		return
	}
	out := reflect.MakeMapWithSize(src.Type(), src.Len())
	iter := src.MapRange()
	for iter.Next() {
		v := reflect.New(src.Type().Elem()).Elem()
		c.elem.copy(v, iter.Value())
		out.SetMapIndex(iter.Key(), v)
	}
	dst.Set(out)
}
