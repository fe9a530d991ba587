package call

import (
	"crypto/rand"
	"fmt"
)

// NewUUID returns a random (version 4) UUID in canonical lower-case form,
// from crypto/rand (spec 4.2): the Idempotency-Key of a call that carries
// one, the same for every attempt of the call.
func NewUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("secinfra: transport: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
