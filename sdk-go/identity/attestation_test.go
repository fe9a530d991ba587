package identity_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/secinfra/secinfra/sdk-go/identity"
)

func TestAttestationHidesTheToken(t *testing.T) {
	a := identity.JoinToken("sjt_abc.secret")
	for _, format := range []string{"%v", "%+v", "%#v"} {
		if out := fmt.Sprintf(format, a); strings.Contains(out, "secret") && !strings.Contains(out, "redacted") || strings.Contains(out, "sjt_") {
			t.Fatalf("%s shows the token: %s", format, out)
		}
	}
}
